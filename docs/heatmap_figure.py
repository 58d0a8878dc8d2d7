"""Make docs/images/heatmap.png: a held-out smear, its heatmap and its cells.

Usage::

    python docs/heatmap_figure.py [IMAGE] [--out docs/images/heatmap.png]

Runs the bundled model with the default thresholds (0.8/0.5) on a smear of
the validation split and draws three panels side by side: the image, the
cell-probability heatmap (inferno) and the cell outlines with their count.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
DEFAULT = HERE.parent.parent / "shared/data/cbc-train/images/BloodImage_00005.jpg"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", nargs="?", default=str(DEFAULT))
    parser.add_argument("--out", default=str(HERE / "images" / "heatmap.png"))
    args = parser.parse_args(argv)

    from matplotlib import colormaps
    from PIL import Image, ImageDraw
    from skimage.segmentation import find_boundaries

    import napari_milseg
    from napari_milseg.io import read_image

    image = read_image(args.image)
    result = napari_milseg.segment(image)
    heat = (colormaps["inferno"](result.heatmap)[..., :3] * 255).astype(np.uint8)
    cells = image.copy()
    cells[find_boundaries(result.labels)] = (255, 255, 0)
    panel = Image.fromarray(np.concatenate([image, heat, cells], axis=1))
    ImageDraw.Draw(panel).text((2 * image.shape[1] + 10, 10), f"{result.count} cells",
                               fill=(255, 255, 0))
    panel.save(args.out)
    print(f"{args.out}: {Path(args.image).name}, {result.count} cells")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
