"""Cell-detection accuracy of a model on annotated smears.

Usage::

    python benchmarks/accuracy.py [--model PATH] [--list benchmarks/splits/cbc-val.txt]
        [--inner 0.8] [--outer 0.5] [--no-closer-look] [--split-joined] [--sweep] [--breakdown]
        [--saved-as {8,12,16,float}] [--exposure FACTOR] [--out result.json]

Runs :func:`napari_milseg.segment` on every listed image, matches the cells
to the VOC boxes of ``../annotations/<stem>.xml`` (see :mod:`cellmatch`) and
prints precision, recall, F1 and count accuracy. ``--sweep`` re-labels the
same heatmaps over a grid of inner/outer thresholds (the network runs once).
``--breakdown`` sorts the predicted cells without a box: in a box another
cell matched (a second piece?), touching the image border, or elsewhere.

The shared CBC boxes miss many red cells at the image border and in clumps,
so precision (and count accuracy) read lower than against complete labels.
Each result is therefore given twice: against all boxes, and "interior",
where the cells cut by the image edge are left out on both sides when
unmatched (:func:`cellmatch.match_interior`). The interior figures still
count the cells the boxes miss inside clumps as false positives.

``--saved-as`` hands each smear to ``segment`` as if it had been saved
another way: ``16`` (uint16, values × 257), ``12`` (12-bit camera data in
uint16, × 16) or ``float`` (float32, / 255), to check that the way an image
is stored does not change its cells. ``--exposure`` multiplies each 8-bit
smear by a factor first (rounded, clipped at 255), as if it had been
photographed with a shorter (below 1) or longer exposure.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from cellmatch import (  # noqa: E402
    centroids,
    match,
    match_interior,
    read_voc,
    summarise,
    unmatched,
)

HERE = Path(__file__).parent

#: How ``--saved-as`` turns an 8-bit smear into another storage of the same picture.
SAVED_AS = {
    "8": lambda a: a,
    "16": lambda a: a.astype(np.uint16) * 257,
    "12": lambda a: a.astype(np.uint16) * 16,
    "float": lambda a: a.astype(np.float32) / 255,
}


def read_list(path: Path) -> list[Path]:
    """The images of a split file, resolved (read as ``milseg train`` reads it)."""
    from napari_milseg.dataset import read_list as read

    return [p.resolve() for p in read(path)]


def annotation_for(image: Path) -> Path:
    return image.parent.parent / "annotations" / f"{image.stem}.xml"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="weights file (default: bundled)")
    parser.add_argument("--list", default=str(HERE / "splits" / "cbc-val.txt"))
    parser.add_argument("--inner", type=float, default=0.8)
    parser.add_argument("--outer", type=float, default=0.5)
    parser.add_argument("--diameter", type=float, default=None)
    parser.add_argument("--closer-look", action=argparse.BooleanOptionalAction, default=True,
                        help="also look at each image enlarged twice for small cells "
                        "(on by default, as in segment)")
    parser.add_argument("--split-joined", action=argparse.BooleanOptionalAction, default=False,
                        help="split joined red cells (segment(..., split_joined=True))")
    parser.add_argument("--sweep", action="store_true", help="also try a grid of thresholds")
    parser.add_argument("--breakdown", action="store_true",
                        help="sort the unmatched cells: second pieces, border, elsewhere")
    parser.add_argument("--limit", type=int, default=None, help="first N images only")
    parser.add_argument("--saved-as", choices=sorted(SAVED_AS), default="8",
                        help="segment each smear as if stored in 16 bits, 12 bits in 16 or "
                        "float (default 8: as it is)")
    parser.add_argument("--exposure", type=float, default=1.0,
                        help="multiply each 8-bit smear by this first, clipped at 255 "
                        "(default 1: as it is)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if not args.exposure > 0:
        parser.error("--exposure must be above 0")

    from PIL import Image

    import napari_milseg as ms

    model = ms.load_model(args.model)
    images = read_list(Path(args.list))[: args.limit]
    pictures, heatmaps, labels, boxes, times = [], [], [], [], []
    for path in images:
        image = np.asarray(Image.open(path).convert("RGB"))
        if args.exposure != 1.0:
            image = np.clip(np.round(image * args.exposure), 0, 255).astype(np.uint8)
        image = SAVED_AS[args.saved_as](image)
        pictures.append(image)
        t0 = time.perf_counter()
        result = ms.segment(image, args.inner, args.outer, model=model, diameter=args.diameter,
                            closer_look=args.closer_look, split_joined=args.split_joined)
        times.append(time.perf_counter() - t0)
        heatmaps.append(result.heatmap)
        labels.append(result.labels)
        boxes.append(read_voc(annotation_for(path)))
    summary = score(labels, boxes)
    summary["seconds_per_image"] = float(np.median(times))
    report = {
        "model": args.model or "bundled",
        "closer_look": args.closer_look,
        "split_joined": args.split_joined,
        "saved_as": args.saved_as,
        "exposure": args.exposure,
        "list": args.list,
        "inner": args.inner,
        "outer": args.outer,
        "machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
        "summary": summary,
    }
    show(f"{args.inner:.2f}/{args.outer:.2f}", summary)
    if args.breakdown:
        totals: dict[str, int] = {}
        for lab, b in zip(labels, boxes, strict=True):
            for key, n in unmatched(lab, b).items():
                totals[key] = totals.get(key, 0) + n
        report["breakdown"] = totals
        print("cells: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in totals.items()))
    if args.sweep:
        grid = []
        diameter = result.diameter  # every image was segmented at this one diameter
        for inner in (0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95):
            for outer in (0.3, 0.4, 0.5, 0.6):
                if outer >= inner:
                    continue
                split = [
                    ms.label_cells(h, inner, outer, diameter=diameter,
                                   image=picture if args.split_joined else None)
                    for h, picture in zip(heatmaps, pictures, strict=True)
                ]
                s = score(split, boxes)
                grid.append({"inner": inner, "outer": outer, **s})
                show(f"{inner:.2f}/{outer:.2f}", s)
        report["sweep"] = grid
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    return 0


def score(labels: list[np.ndarray], boxes: list[list]) -> dict:
    """:func:`cellmatch.summarise` of all boxes, with the interior figures under ``"interior"``."""
    pairs = list(zip(labels, boxes, strict=True))
    summary = summarise([match(centroids(lab), b) for lab, b in pairs])
    summary["interior"] = summarise([match_interior(lab, b) for lab, b in pairs])
    return summary


def show(name: str, summary: dict) -> None:
    """Print a result of :func:`score`: all boxes, then the interior figures."""
    print(format_line(name, summary), flush=True)
    print(format_line("  interior", summary["interior"]), flush=True)


def format_line(name: str, s: dict) -> str:
    kinds = " ".join(f"{k[7:]}={v:.3f}" for k, v in s.items() if k.startswith("recall_"))
    return (f"{name}  P={s['precision']:.3f} R={s['recall']:.3f} F1={s['f1']:.3f} "
            f"countacc={s['count_accuracy']:.3f} pred={s['predicted']} true={s['true']}  {kinds}")


if __name__ == "__main__":
    raise SystemExit(main())
