"""Speed of napari-milseg against a classical scikit-image pipeline, on this CPU.

Usage::

    python benchmarks/speed.py [IMAGES] [--n 20] [--model PATH | --untrained DIAMETER]
        [--threads N] [--plain] [--colour-turn DEG]
        [--out result.json|result.md] [--overwrite]

Times, on the same 640x480 smears in one run:

- ``segment``: :func:`napari_milseg.segment` with its defaults, network
  (at its scale and, for the closer look at small cells, on the image
  enlarged twice) and watershed: what a user waits for after clicking
  Segment;
- ``label_cells``: the marker-controlled watershed alone on the cached
  heatmap, with the merge of wide cells at the heatmap's cell diameter, as
  the Segment panel runs it by default (what a slider move costs);
  ``label_cells_joined`` the same with the split of joined red cells
  (``split joined red cells`` ticked; no target of its own); ``label_cells_proxy`` times it on a
  cell-shaped map made from the classical mask (see :func:`proxy_heatmap`),
  which is what counts with an untrained network, whose map has no cores;
- ``classical``: grayscale, Gaussian blur, Otsu mask, distance transform,
  ``peak_local_max`` markers, watershed;
- with ``--plain``, ``segment_plain``: ``segment`` without the closer look
  (``closer_look=False``, the faster choice; no target of its own);
- with ``--colour-turn DEG``, ``segment_turned``: ``segment`` with the model's
  colour turn set to DEG degrees, what a model fine-tuned for another
  stain costs (no target: the bundled model turns nothing).

Targets (issue 2): ``segment`` at most 2x the classical pipeline,
``label_cells`` at most 0.5x. The first image is run once untimed so that
model loading and first-call overheads are not counted. An untrained model
(``--untrained``) has the same network, so its timing stands for the
trained one at the same cell diameter (which sets the input rescale).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_IMAGES = HERE.parent.parent / "shared" / "data" / "cbc-train" / "images"
TARGETS = {"segment": 2.0, "label_cells": 0.5, "label_cells_proxy": 0.5}


def machine_info() -> dict:
    """CPU, cores, threads and versions, for the record."""
    import scipy
    import skimage
    import torch

    import napari_milseg

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-image": skimage.__version__,
        "torch": torch.__version__,
        "napari-milseg": napari_milseg.__version__,
    }


def classical(image: np.ndarray, sigma: float = 2.0, min_distance: int = 15) -> np.ndarray:
    """The classical pipeline: blur, Otsu, distance transform, local maxima, watershed.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
        A smear (cells darker than the background).
    sigma : float
        Gaussian blur, in pixels.
    min_distance : int
        Least distance between two markers, in pixels.

    Returns
    -------
    ndarray, shape (H, W), int32
        Labelled cells.
    """
    from scipy import ndimage as ndi
    from skimage.color import rgb2gray
    from skimage.feature import peak_local_max
    from skimage.filters import gaussian, threshold_otsu
    from skimage.segmentation import watershed

    grey = gaussian(rgb2gray(image), sigma=sigma)
    mask = grey < threshold_otsu(grey)
    distance = ndi.distance_transform_edt(mask)
    peaks = peak_local_max(distance, min_distance=min_distance, labels=ndi.label(mask)[0])
    markers = np.zeros(mask.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return watershed(-distance, markers, mask=mask).astype(np.int32)


def proxy_heatmap(image: np.ndarray, diameter: float) -> np.ndarray:
    """A cell-like heatmap without the network, to time ``label_cells`` on real structure.

    An untrained network's heatmap has no cores above 0.8, so the watershed
    returns at once; this map has the shape a trained one has: high in cell
    centres, dipping between touching cells, low on the background.
    """
    from scipy import ndimage as ndi
    from skimage.color import rgb2gray
    from skimage.filters import gaussian, threshold_otsu

    grey = gaussian(rgb2gray(image), sigma=2.0)
    mask = grey < threshold_otsu(grey)
    distance = ndi.distance_transform_edt(mask)
    inside = 0.5 + 0.5 * np.minimum(1.0, distance / (0.25 * diameter))
    heatmap = np.where(mask, inside, 0.4 * mask)
    return gaussian(heatmap, sigma=1.0).astype(np.float32)


def load_images(folder: Path, n: int) -> list[tuple[str, np.ndarray]]:
    from napari_milseg.io import list_images, load_image

    out = []
    for path in list_images([folder]):
        out.append((path.name, load_image(path).data))
        if len(out) == n:
            break
    if not out:
        raise SystemExit(f"no images found in {folder}")
    return out


def timed(call, *args, **kwargs):
    start = time.perf_counter()
    value = call(*args, **kwargs)
    return value, (time.perf_counter() - start) * 1000.0


def summarise(times: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    base_mean = statistics.fmean(times["classical"])
    base_median = statistics.median(times["classical"])
    rows = {}
    for name, values in times.items():
        mean, median = statistics.fmean(values), statistics.median(values)
        row = {
            "mean_ms": round(mean, 2),
            "median_ms": round(median, 2),
            "min_ms": round(min(values), 2),
            "max_ms": round(max(values), 2),
            "ratio_mean": round(mean / base_mean, 3),
            "ratio_median": round(median / base_median, 3),
        }
        if name in TARGETS:
            row["target_ratio"] = TARGETS[name]
            row["meets_target"] = bool(row["ratio_median"] <= TARGETS[name])
        rows[name] = row
    return rows


def markdown(result: dict) -> str:
    info = result["machine"]
    lines = [
        f"# napari-milseg speed ({result['images']} images of "
        f"{result['image_shape'][1]}x{result['image_shape'][0]} px)",
        "",
        f"Model: {result['model']} (cell diameter {result['diameter']:g} px). "
        f"CPU: {info['cpu']}, {info['usable_cores']} usable of {info['cores']} cores, "
        f"torch threads {info['torch_threads']}, load average at start "
        f"{', '.join(f'{x:.2f}' for x in info['load_average'] or [])}.",
        "",
        "| step | mean ms | median ms | vs classical (median) | target | met |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, row in result["summary"].items():
        target = f"<= {row['target_ratio']}x" if "target_ratio" in row else ""
        met = ("yes" if row["meets_target"] else "no") if "meets_target" in row else ""
        lines.append(
            f"| {name} | {row['mean_ms']:.1f} | {row['median_ms']:.1f} | "
            f"{row['ratio_median']:.2f}x | {target} | {met} |"
        )
    lines += [
        "",
        "Versions: " + ", ".join(
            f"{k} {info[k]}"
            for k in ("python", "numpy", "scipy", "scikit-image", "torch", "napari-milseg")
        ),
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="?", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--n", type=int, default=20, help="number of images (default 20)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--model", default=None, help="weights file (default: bundled)")
    group.add_argument(
        "--untrained",
        type=float,
        metavar="DIAMETER",
        help="time an untrained network for cells of DIAMETER px (same speed as trained)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument(
        "--min-distance",
        type=int,
        default=None,
        help="classical marker spacing in px (default: a quarter of the cell diameter)",
    )
    parser.add_argument(
        "--plain",
        action="store_true",
        help="also time segment with closer_look=False (no target of its own)",
    )
    parser.add_argument(
        "--colour-turn",
        type=float,
        default=None,
        metavar="DEG",
        help="also time segment with the model's colour turn set to DEG degrees",
    )
    parser.add_argument("--out", type=Path, default=None, help="write .json or .md")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = parser.parse_args(argv)
    if args.out is not None and args.out.suffix not in (".json", ".md"):
        parser.error("--out must end in .json or .md")

    import torch

    import napari_milseg
    from napari_milseg.model import ModelError, load_model, new_model

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        model = (
            new_model(args.untrained, device="cpu", seed=0)
            if args.untrained
            else load_model(args.model, device="cpu")
        )
    except ModelError as err:
        raise SystemExit(f"speed.py: {err} (try --model PATH or --untrained 100)") from None
    images = load_images(args.images, args.n)
    min_distance = args.min_distance or max(1, round(0.25 * model.diameter))
    print(f"{len(images)} images from {args.images}; model {model.name}", file=sys.stderr)

    napari_milseg.segment(images[0][1], model=model)  # warm-up
    times: dict[str, list[float]] = {
        "segment": [], "label_cells": [], "label_cells_joined": [], "label_cells_proxy": [],
        "classical": [],
    }
    if args.plain:
        times["segment_plain"] = []
    if args.colour_turn is not None:
        import dataclasses

        turned = dataclasses.replace(model, colour_turn=args.colour_turn)
        napari_milseg.segment(images[0][1], model=turned)  # warm-up
        times["segment_turned"] = []
    counts: dict[str, list[int]] = {"segment": [], "classical": []}
    for name, image in images:
        result, ms = timed(napari_milseg.segment, image, model=model)
        times["segment"].append(ms)
        if args.plain:
            _, ms = timed(napari_milseg.segment, image, model=model, closer_look=False)
            times["segment_plain"].append(ms)
        if args.colour_turn is not None:
            _, ms = timed(napari_milseg.segment, image, model=turned)
            times["segment_turned"].append(ms)
        counts["segment"].append(result.count)
        _, ms = timed(napari_milseg.label_cells, result.heatmap, diameter=result.diameter)
        times["label_cells"].append(ms)
        _, ms = timed(
            napari_milseg.label_cells, result.heatmap, diameter=result.diameter, image=image
        )
        times["label_cells_joined"].append(ms)
        proxy = proxy_heatmap(image, model.diameter)
        _, ms = timed(napari_milseg.label_cells, proxy, diameter=model.diameter)
        times["label_cells_proxy"].append(ms)
        labels, ms = timed(classical, image, min_distance=min_distance)
        times["classical"].append(ms)
        counts["classical"].append(int(labels.max()))
        print(
            f"  {name}: segment {times['segment'][-1]:.0f} ms, label_cells "
            f"{times['label_cells'][-1]:.1f} ms (proxy map {times['label_cells_proxy'][-1]:.1f} "
            f"ms), classical {times['classical'][-1]:.0f} ms",
            file=sys.stderr,
        )

    result = {
        "images": len(images),
        "folder": str(args.images),
        "image_shape": list(images[0][1].shape),
        "model": "untrained network (seed 0)" if args.untrained else model.name,
        "diameter": model.diameter,
        "colour_turn_timed": args.colour_turn,
        "classical_min_distance": min_distance,
        "machine": machine_info(),
        "summary": summarise(times),
        "mean_counts": {k: statistics.fmean(v) for k, v in counts.items()},
        "times_ms": {k: [round(x, 2) for x in v] for k, v in times.items()},
    }
    text = markdown(result)
    print(text)
    if args.out is not None:
        write_report(args.out, result, text, args.overwrite)
    return 0


def write_report(out: Path, result: dict, text: str, overwrite: bool) -> None:
    """Write ``result`` as JSON (``out`` ends in .json) or ``text`` (Markdown), no clobber."""
    from napari_milseg.io import atomic_write

    payload = json.dumps(result, indent=2) + "\n" if out.suffix == ".json" else text
    atomic_write(out, lambda fh: fh.write(payload.encode()), overwrite=overwrite)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
