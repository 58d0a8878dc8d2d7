"""How well does ``estimate_cell_diameter`` find the cell size at other magnifications?

Usage::

    python benchmarks/diameter.py [--images DIR] [--scales 1.0 0.6 0.4 1.5]
        [--groups 1 5 10 20] [--out diameter.md]

The smears (default: the 60 validation smears; ``--images`` takes every
image of a folder instead, in name order) are rescaled by each factor (as if
taken at another magnification) and the cell diameter is estimated from
consecutive groups of each size (1 = every image alone) and from all of them
(up to the 50 the function uses). Every estimate is divided by the factor,
so the right answer is the same in every row: the red cells' diameter in
the original smears, about 100 px (the bundled model's training estimate;
the boxes' median side is 104 px). No labels are used by the estimate.
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=None, help="folder of smears (default: validation)")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.6, 0.4, 1.5])
    parser.add_argument("--groups", type=int, nargs="+", default=[1, 5, 10, 20])
    parser.add_argument("--val-list", default=str(HERE / "splits" / "cbc-val.txt"))
    parser.add_argument("--out", default=None, help="also write the table here (Markdown)")
    args = parser.parse_args(argv)

    from PIL import Image

    from napari_milseg import estimate_cell_diameter
    from napari_milseg.dataset import read_list
    from napari_milseg.io import is_image_name

    if args.images:
        paths = sorted(p for p in Path(args.images).iterdir() if is_image_name(p))
    else:
        paths = read_list(Path(args.val_list))
    originals = [Image.open(p).convert("RGB") for p in paths]
    lines = [
        "| scale | group of | groups | min | 5th pct | median | 95th pct | max |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for scale in args.scales:
        images = []
        for image in originals:
            size = (round(image.width * scale), round(image.height * scale))
            images.append(np.asarray(image.resize(size, Image.BILINEAR)))
        for n in [*args.groups, len(images)]:
            found = np.array([
                estimate_cell_diameter(images[i : i + n]) / scale
                for i in range(0, len(images) - n + 1, n)
            ])
            p5, p50, p95 = np.percentile(found, [5, 50, 95])
            label = "all" if n == len(images) else str(n)
            lines.append(
                f"| {scale:g} | {label} | {len(found)} | {found.min():.0f} | {p5:.0f} | "
                f"{p50:.0f} | {p95:.0f} | {found.max():.0f} |"
            )
            print(lines[-1], flush=True)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}"
    table = "\n".join(lines) + f"\n\n({len(originals)} images; {machine})\n"
    print(table)
    if args.out:
        Path(args.out).write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
