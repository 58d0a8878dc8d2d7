"""Check a model's cells by eye on validation smears, and total the verdicts.

Usage::

    python benchmarks/eye_check.py render --out DIR [--model PATH] [--no-closer-look]
        [--split-joined] [--n 20] [--seed 0]
    python benchmarks/eye_check.py compare --out DIR --new PATH|bundled
        [--old PATH|bundled] [--no-old-closer-look] [--no-new-closer-look]
        [--old-split-joined] [--new-split-joined] [--new-lab [--scale 0.6 --hue 0.3]]
    python benchmarks/eye_check.py total benchmarks/eye_check/2026-12-01-fourth-round.tsv

The CBC boxes miss many cells, so the scores of ``accuracy.py`` cannot say
how close a model is to complete labels. This is the manual alternative.

``render`` picks ``--n`` smears of the validation list at random (seeded),
segments them at the default thresholds and writes, for each, the smear
at twice its size with the cells' outlines: yellow and numbered for the
cells inside the image, blue for the cells that touch the image edge. No
boxes are drawn, so that the cells the boxes miss are looked for too.

One then looks at every picture (zooming in where cells overlap) and
writes one line per smear into a tab-separated table (see
``benchmarks/eye_check/``), counting only cells inside the image:

- ``tp``: numbered cells that cover at least one real cell (one each);
- ``fp``: numbered cells that are a piece of a cell another one covers,
  or no cell at all;
- ``fn``: real cells inside the image that no cell covers, plus every
  real cell beyond the first in a cell that covers several (a merge);
- ``unsure_fn``, ``unsure_fp``: cases one cannot decide (a cell that may
  be two overlapping cells, a faint spot that may be a platelet), left out
  of ``fn`` and counted in ``tp`` instead;
- ``notes``: what was seen.

A real cell inside the image whose cell runs to the image edge (through a
thin strip, or by taking in a cell cut by the edge) counts as found when
that cell is mostly this one.

``compare`` checks a new model (or setting) against one already checked:
on the same smears it writes one picture per place inside the image
where a cell of one matches no cell of the other (overlap under 60 %),
the old model's outlines (blue) beside the new one's (yellow). One looks
at those places only and carries the old table's verdicts over
everywhere else. With ``--new-lab`` the new model segments each smear
turned into the "new lab" of ``finetune_experiment.py`` (rescaled by
``--scale``, hue and gamma changed), and its cells are scaled back to
the smear's size (nearest neighbour) and drawn on the original: the
check of a model fine-tuned for that lab, on the same smears.

``total`` prints precision, recall, F1 and count accuracy twice: with the
unsure cases in the model's favour, and against it.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from accuracy import read_list  # noqa: E402
from cellmatch import at_border  # noqa: E402

COLUMNS = ("stem", "tp", "fp", "fn", "unsure_fn", "unsure_fp", "notes")


def pick(list_path: Path, n: int, seed: int) -> list[Path]:
    """``n`` images of a split file in a seeded random order."""
    images = read_list(list_path)
    random.Random(seed).shuffle(images)
    return images[:n]


def outline_picture(image: np.ndarray, labels: np.ndarray, scale: int = 2):
    """The image enlarged ``scale`` times with the cells' outlines and numbers.

    Returns the picture (a PIL image) and the label ids inside the image
    and at its edge.
    """
    from PIL import Image, ImageDraw, ImageFont
    from scipy import ndimage as ndi
    from skimage.segmentation import find_boundaries

    height, width = labels.shape
    inside, edge = _inside_and_edge(labels)
    big_labels = np.kron(labels, np.ones((scale, scale), labels.dtype))
    outline = find_boundaries(big_labels, mode="inner")
    edge_outline = outline & np.isin(big_labels, edge)
    picture = np.asarray(
        Image.fromarray(image).resize((width * scale, height * scale), Image.BICUBIC)
    ).copy()
    picture[outline & ~edge_outline] = (255, 255, 0)
    picture[edge_outline] = (0, 90, 255)
    result = Image.fromarray(picture)
    if inside:
        draw = ImageDraw.Draw(result)
        font = ImageFont.load_default(size=20)
        centres = ndi.center_of_mass(np.ones_like(labels), labels, inside)
        for i, (cy, cx) in zip(inside, centres, strict=True):
            draw.text((cx * scale - 8, cy * scale - 10), str(i), fill=(0, 0, 0),
                      font=font, stroke_width=2, stroke_fill=(255, 255, 255))
    return result, inside, edge


def _inside_and_edge(labels: np.ndarray) -> tuple[list[int], list[int]]:
    """The label ids inside the image, and those that touch its edge."""
    ids = np.unique(labels)
    ids = ids[ids > 0]
    edge = at_border(labels, ids)
    return [int(i) for i in ids[~edge]], [int(i) for i in ids[edge]]


def _new_folder(folder: str) -> Path | None:
    out = Path(folder)
    if out.exists() and any(out.iterdir()):
        print(f"eye_check: {out} is not empty; choose a new folder", file=sys.stderr)
        return None
    out.mkdir(parents=True, exist_ok=True)
    return out


def _model(path: str | None):
    import napari_milseg as ms

    return ms.load_model(None if path in (None, "bundled") else path)


def render(args) -> int:
    from PIL import Image

    import napari_milseg as ms

    out = _new_folder(args.out)
    if out is None:
        return 2
    model = _model(args.model)
    for path in pick(Path(args.list), args.n, args.seed):
        image = np.asarray(Image.open(path).convert("RGB"))
        result = ms.segment(image, model=model, closer_look=args.closer_look,
                            split_joined=args.split_joined)
        picture, inside, edge = outline_picture(image, result.labels)
        picture.save(out / f"{path.stem}.png")
        print(f"{path.stem}: {len(inside)} cells inside the image, {len(edge)} at its edge")
    return 0


def unmatched_inside(labels: np.ndarray, other: np.ndarray, overlap: float = 0.6) -> list[int]:
    """Cells of ``labels`` inside the image that overlap no cell of ``other`` by ``overlap``."""
    from scipy import ndimage as ndi

    boxes = ndi.find_objects(labels)
    out = []
    for i in _inside_and_edge(labels)[0]:
        box = boxes[i - 1]
        this = labels[box] == i
        hits = np.bincount(other[box][this], minlength=int(other.max()) + 1)
        hits[0] = 0
        best = int(hits.argmax())
        union = this.sum() + np.count_nonzero(other == best) - hits[best]
        if best == 0 or hits[best] / union < overlap:
            out.append(i)
    return out


def _new_labels(image: np.ndarray, model, args) -> np.ndarray:
    """The new model's cells on ``image``, or on its new-lab look scaled back."""
    import napari_milseg as ms

    if not args.new_lab:
        return ms.segment(image, model=model, closer_look=args.new_closer_look,
                          split_joined=args.new_split_joined).labels
    from finetune_experiment import new_lab
    from skimage.transform import resize

    look = new_lab(image, args.scale, args.hue)
    labels = ms.segment(look, model=model, closer_look=args.new_closer_look,
                        split_joined=args.new_split_joined).labels
    return resize(labels, image.shape[:2], order=0, preserve_range=True,
                  anti_aliasing=False).astype(labels.dtype)


def compare(args) -> int:
    from PIL import Image
    from scipy import ndimage as ndi
    from skimage.segmentation import find_boundaries

    import napari_milseg as ms

    out = _new_folder(args.out)
    if out is None:
        return 2
    old, new = _model(args.old), _model(args.new)
    places = 0
    for path in pick(Path(args.list), args.n, args.seed):
        image = np.asarray(Image.open(path).convert("RGB"))
        a = ms.segment(image, model=old, closer_look=args.old_closer_look,
                       split_joined=args.old_split_joined).labels
        b = _new_labels(image, new, args)
        changed = np.isin(a, unmatched_inside(a, b)) | np.isin(b, unmatched_inside(b, a))
        regions, _ = ndi.label(ndi.binary_dilation(changed, iterations=6))
        for box in ndi.find_objects(regions):
            cy, cx = (box[0].start + box[0].stop) // 2, (box[1].start + box[1].stop) // 2
            half = max(box[0].stop - box[0].start, box[1].stop - box[1].start, 70) // 2 + 15
            y0, x0 = max(0, cy - half), max(0, cx - half)
            y1, x1 = min(a.shape[0], cy + half), min(a.shape[1], cx + half)
            pair = []
            for labels, colour in ((a, (0, 200, 255)), (b, (255, 255, 0))):
                crop = image[y0:y1, x0:x1].copy()
                crop[find_boundaries(labels[y0:y1, x0:x1], mode="inner")] = colour
                pair.append(np.kron(crop, np.ones((2, 2, 1), crop.dtype)))
            gap = np.full((pair[0].shape[0], 6, 3), 255, np.uint8)
            Image.fromarray(np.concatenate([pair[0], gap, pair[1]], axis=1)).save(
                out / f"{path.stem}_x{cx}_y{cy}.png"
            )
            places += 1
    print(f"{places} places where the cells differ; pictures in {out}")
    return 0


def read_table(path: Path) -> list[dict]:
    """The rows of a verdict table (tab-separated, ``#`` lines are comments)."""
    with open(path, newline="", encoding="utf-8") as f:
        lines = [line for line in f if line.strip() and not line.startswith("#")]
    rows = list(csv.DictReader(lines, delimiter="\t"))
    if not rows or tuple(rows[0]) != COLUMNS:
        raise ValueError(f"{path}: expected the columns {', '.join(COLUMNS)}")
    for row in rows:
        for key in COLUMNS[1:-1]:
            row[key] = int(row[key])
    return rows


def scores(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Precision, recall, F1 and count accuracy from the three counts."""
    predicted, true = tp + fp, tp + fn
    precision = tp / predicted if predicted else 0.0
    recall = tp / true if true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    count = 1 - abs(predicted - true) / true if true else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "count_accuracy": count,
            "predicted": predicted, "true": true}


def total(args) -> int:
    rows = read_table(Path(args.table))
    tp, fp, fn, ufn, ufp = (sum(r[k] for r in rows) for k in COLUMNS[1:-1])
    print(f"{len(rows)} smears: tp {tp}, fp {fp}, fn {fn}, unsure fn {ufn}, unsure fp {ufp}")
    for name, s in (
        ("unsure in the model's favour", scores(tp, fp, fn)),
        ("unsure against the model", scores(tp - ufp, fp + ufp, fn + ufn)),
    ):
        print(f"{name}: P {s['precision']:.3f} R {s['recall']:.3f} F1 {s['f1']:.3f} "
              f"count accuracy {s['count_accuracy']:.3f} "
              f"({s['predicted']} cells for {s['true']})")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("render", help="write the outline pictures")
    r.add_argument("--out", required=True, help="a new (or empty) folder")
    r.add_argument("--model", default=None, help="weights file (default: bundled)")
    r.add_argument("--list", default=str(HERE / "splits" / "cbc-val.txt"))
    r.add_argument("--n", type=int, default=20)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--closer-look", action=argparse.BooleanOptionalAction, default=True,
                   help="segment with the closer look at small cells (default, as segment)")
    r.add_argument("--split-joined", action=argparse.BooleanOptionalAction, default=False,
                   help="split joined red cells (off by default, as segment)")
    c = sub.add_parser("compare", help="pictures of where two models' cells differ")
    c.add_argument("--out", required=True, help="a new (or empty) folder")
    c.add_argument("--old", default="bundled", help="the model already checked")
    c.add_argument("--new", required=True, help="the model to check ('bundled' allowed)")
    c.add_argument("--old-closer-look", action=argparse.BooleanOptionalAction, default=True,
                   help="the closer look at small cells for the old model (default: on)")
    c.add_argument("--new-closer-look", action=argparse.BooleanOptionalAction, default=True,
                   help="the closer look at small cells for the new model (default: on)")
    for side in ("old", "new"):
        c.add_argument(f"--{side}-split-joined", action=argparse.BooleanOptionalAction,
                       default=False, help=f"split joined red cells for the {side} model")
    c.add_argument("--new-lab", action="store_true",
                   help="the new model sees the smears in finetune_experiment.py's new-lab look")
    c.add_argument("--scale", type=float, default=0.6, help="new-lab rescale (with --new-lab)")
    c.add_argument("--hue", type=float, default=0.3, help="new-lab hue turn (with --new-lab)")
    c.add_argument("--list", default=str(HERE / "splits" / "cbc-val.txt"))
    c.add_argument("--n", type=int, default=20)
    c.add_argument("--seed", type=int, default=0)
    t = sub.add_parser("total", help="total a verdict table")
    t.add_argument("table")
    args = parser.parse_args(argv)
    return {"render": render, "compare": compare, "total": total}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
