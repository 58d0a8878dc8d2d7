"""Fine-tuning experiment: does ``milseg train`` adapt the model to a "new lab"?

Usage::

    python benchmarks/finetune_experiment.py --work /tmp/newlab [--model PATH]
        [--positives 50] [--epochs 10] [--scale 0.6] [--hue 0.3] [--gamma 0.8]
        [--colour-turn auto] [--lr RATE] [--split-joined] [--out result.json]

The shared CBC smears are turned into a lab the model has never seen: every
image is rescaled (``--scale``, smaller cells, as with a lower magnification)
and its colours are changed (hue rotated by ``--hue`` of a turn, and a gamma,
one for all channels or one per channel, as with another stain and camera).
Then:

1. the first ``--positives`` images of the *training* split, transformed,
   are written to ``WORK/positive/`` (no labels of any kind);
2. the bundled model (or ``--model``) segments the transformed *validation*
   split with default settings: the zero-shot score. For reference it is
   also run with the true cell diameter given by hand (``--diameter``),
   and with the diameter estimated from those images
   (:func:`napari_milseg.estimate_cell_diameter`, what
   ``milseg segment --diameter auto`` does);
3. ``milseg train --positive WORK/positive --epochs N --out WORK/lab.pt``
   fine-tunes it (the same command and code as the Fine-tune panel), timed;
   ``--colour-turn`` is passed on (default ``auto``: training chooses a
   turn of the colours, :mod:`napari_milseg.colour`);
4. the fine-tuned model segments the same transformed validation images
   with default settings, and, to tell the turn's share from training's,
   the starting model does too with the fine-tuned model's colour turn and
   the estimated diameter, untrained.

Scores use :mod:`cellmatch` against the validation boxes, scaled like the
images, against all boxes and "interior" (cells cut by the image edge left
out when unmatched, see ``accuracy.py``). The boxes are used only for
scoring, never for training.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from accuracy import annotation_for, read_list, show  # noqa: E402
from accuracy import score as score_labels  # noqa: E402
from cellmatch import Box, read_voc  # noqa: E402

HERE = Path(__file__).parent


def new_lab(image: np.ndarray, scale: float, hue: float, gamma=0.8) -> np.ndarray:
    """The "new lab" look: rescaled, hue-rotated and gamma-changed RGB uint8.

    ``gamma`` is one number, or three (red, green, blue).
    """
    from skimage.color import hsv2rgb, rgb2hsv
    from skimage.transform import rescale

    small = rescale(image / 255.0, scale, channel_axis=-1, anti_aliasing=True)
    hsv = rgb2hsv(small)
    hsv[..., 0] = (hsv[..., 0] + hue) % 1.0
    out = hsv2rgb(hsv) ** np.asarray(gamma, dtype=float)
    return np.clip(np.round(out * 255), 0, 255).astype(np.uint8)


def scaled_boxes(boxes: list[Box], scale: float) -> list[Box]:
    return [Box(b.kind, b.x0 * scale, b.y0 * scale, b.x1 * scale, b.y1 * scale) for b in boxes]


#: Whether scores split joined red cells (``--split-joined``).
SPLIT_JOINED = False


def score(model, images, boxes, diameter=None) -> dict:
    import napari_milseg as ms

    labels, times = [], []
    for image in images:
        t0 = time.perf_counter()
        labels.append(ms.segment(image, model=model, diameter=diameter,
                                 split_joined=SPLIT_JOINED).labels)
        times.append(time.perf_counter() - t0)
    summary = score_labels(labels, boxes)
    summary["seconds_per_image"] = float(np.median(times))
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="folder for the new lab's images and model")
    parser.add_argument("--model", default=None, help="starting model (default: bundled)")
    parser.add_argument("--positives", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--scale", type=float, default=0.6)
    parser.add_argument("--hue", type=float, default=0.3)
    parser.add_argument("--gamma", type=float, nargs="+", default=[0.8],
                        help="one gamma, or three (red, green, blue)")
    parser.add_argument("--colour-turn", default="auto", help="passed on to milseg train")
    parser.add_argument("--lr", default=None, help="passed on to milseg train (default: its own)")
    parser.add_argument("--train-list", default=str(HERE / "splits" / "cbc-train.txt"))
    parser.add_argument("--val-list", default=str(HERE / "splits" / "cbc-val.txt"))
    parser.add_argument("--split-joined", action="store_true",
                        help="score with the split of joined red cells (off by default)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    global SPLIT_JOINED
    SPLIT_JOINED = args.split_joined

    from PIL import Image

    import napari_milseg as ms

    if len(args.gamma) not in (1, 3):
        parser.error("--gamma takes one number or three")
    gamma = args.gamma[0] if len(args.gamma) == 1 else list(args.gamma)
    work = Path(args.work)
    positive = work / "positive"
    positive.mkdir(parents=True, exist_ok=True)
    for path in read_list(Path(args.train_list))[: args.positives]:
        target = positive / f"{path.stem}.png"
        if not target.exists():
            image = np.asarray(Image.open(path).convert("RGB"))
            Image.fromarray(new_lab(image, args.scale, args.hue, gamma)).save(target)
    val_paths = read_list(Path(args.val_list))
    val_images = [new_lab(np.asarray(Image.open(p).convert("RGB")), args.scale, args.hue, gamma)
                  for p in val_paths]
    val_boxes = [scaled_boxes(read_voc(annotation_for(p)), args.scale) for p in val_paths]
    Image.fromarray(val_images[0]).save(work / "example_new_lab.png")

    base = ms.load_model(args.model)
    report = {"scale": args.scale, "hue": args.hue, "gamma": gamma, "positives": args.positives,
              "epochs": args.epochs, "validation_images": len(val_images),
              "split_joined": args.split_joined,
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}"}
    report["zero_shot"] = score(base, val_images, val_boxes)
    show("zero-shot (defaults)", report["zero_shot"])
    report["zero_shot_true_diameter"] = score(base, val_images, val_boxes,
                                              diameter=base.diameter * args.scale)
    show(f"zero-shot, --diameter {base.diameter * args.scale:.0f}",
         report["zero_shot_true_diameter"])
    # what `milseg segment --diameter auto` does with a folder of the new lab's images
    estimate = ms.estimate_cell_diameter(val_images)
    report["estimated_diameter"] = estimate
    report["zero_shot_estimated_diameter"] = score(base, val_images, val_boxes, diameter=estimate)
    show(f"zero-shot, --diameter auto ({estimate:.0f})", report["zero_shot_estimated_diameter"])

    tuned = work / "lab.pt"
    command = [sys.executable, "-m", "napari_milseg", "train", "--positive", str(positive),
               "--epochs", str(args.epochs), "--colour-turn", args.colour_turn,
               "--out", str(tuned), "--overwrite"]
    if args.model:
        command += ["--init", args.model]
    if args.lr:
        command += ["--lr", args.lr]
    t0 = time.perf_counter()
    subprocess.run(command, check=True)
    report["train_seconds"] = time.perf_counter() - t0
    report["train_command"] = " ".join(command[2:]).replace("napari_milseg", "milseg", 1)
    print(f"fine-tuning took {report['train_seconds']:.0f} s", flush=True)

    tuned_model = ms.load_model(tuned)
    report["colour_turn"] = tuned_model.colour_turn
    report["colour_turn_agreement"] = tuned_model.card.get("colour_turn_agreement")
    if tuned_model.colour_turn % 360:
        turned = dataclasses.replace(base, colour_turn=tuned_model.colour_turn)
        report["zero_shot_turned"] = score(turned, val_images, val_boxes, diameter=estimate)
        show(f"zero-shot, colours turned {tuned_model.colour_turn:+g}°, --diameter auto",
             report["zero_shot_turned"])
    report["fine_tuned"] = score(tuned_model, val_images, val_boxes)
    show("fine-tuned (defaults)", report["fine_tuned"])
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
