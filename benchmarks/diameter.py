"""How well does ``estimate_cell_diameter`` find the cell size at other magnifications?

Usage::

    python benchmarks/diameter.py [--scales 1.0 0.6 0.4 1.5] [--out diameter.md]

The 60 validation smears are rescaled by each factor (as if taken at
another magnification) and the cell diameter is estimated from one image
at a time, from groups of 10 and 20 images, and from all of them. Every
estimate is divided by the factor, so the right answer is the same in
every row: the red cells' diameter in the original smears, about 100 px
(the bundled model's training estimate; the boxes' median side is 104 px).
No labels are used by the estimate.
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
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.6, 0.4, 1.5])
    parser.add_argument("--val-list", default=str(HERE / "splits" / "cbc-val.txt"))
    parser.add_argument("--out", default=None, help="also write the table here (Markdown)")
    args = parser.parse_args(argv)

    from PIL import Image

    from napari_milseg import estimate_cell_diameter
    from napari_milseg.dataset import read_list

    originals = [Image.open(p).convert("RGB") for p in read_list(Path(args.val_list))]
    lines = [
        "| scale | one image: median | 10th-90th pct | min-max | groups of 10 | groups of 20 "
        "| all |",
        "| ---: | ---: | ---: | ---: | --- | --- | ---: |",
    ]
    for scale in args.scales:
        images = []
        for image in originals:
            size = (round(image.width * scale), round(image.height * scale))
            images.append(np.asarray(image.resize(size, Image.BILINEAR)))
        single = np.array([estimate_cell_diameter(image) / scale for image in images])
        groups = {
            n: [estimate_cell_diameter(images[i : i + n]) / scale
                for i in range(0, len(images) - n + 1, n)]
            for n in (10, 20)
        }
        pooled = estimate_cell_diameter(images) / scale
        lo, hi = np.percentile(single, [10, 90])
        lines.append(
            f"| {scale:g} | {np.median(single):.0f} | {lo:.0f}-{hi:.0f} | "
            f"{single.min():.0f}-{single.max():.0f} | "
            + " ".join(f"{g:.0f}" for g in groups[10]) + " | "
            + " ".join(f"{g:.0f}" for g in groups[20]) + f" | {pooled:.0f} |"
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
