"""Whole-map watershed against the region-by-region one of ``label_cells``.

Usage::

    python benchmarks/watershed.py [--sizes 640 2000 10000] [--smear FILE]

For each size, the bundled model's heatmap of a mosaic of a real smear is
split at the default thresholds twice: by one ``skimage`` watershed over the
whole map, and by ``napari_milseg.cells._label_by_region`` (what
``label_cells`` uses above a megapixel). Prints both times and checks that
the labels are identical.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from PIL import Image
from scale import DEFAULT_SMEAR, mosaic


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[640, 2000, 5000])
    parser.add_argument("--smear", default=str(DEFAULT_SMEAR))
    args = parser.parse_args(argv)

    from scipy import ndimage as ndi
    from skimage.segmentation import watershed

    import napari_milseg as ms
    from napari_milseg import cells

    smear = np.asarray(Image.open(args.smear).convert("RGB"))
    print("| size | whole-map s | region by region s | identical |")
    print("| ---: | ---: | ---: | --- |")
    for size in args.sizes:
        heat = ms.predict_heatmap(mosaic(smear, size))
        markers, _ = ndi.label(heat > 0.8, structure=cells._CONNECTIVITY)
        mask = heat > 0.5
        start = time.perf_counter()
        whole = watershed(-heat, markers, mask=mask)
        t_whole = time.perf_counter() - start
        start = time.perf_counter()
        regions = cells._label_by_region(heat, markers, mask, cells.REGION_TILE)
        t_regions = time.perf_counter() - start
        same = "yes" if np.array_equal(whole, regions) else "NO"
        print(f"| {size} | {t_whole:.2f} | {t_regions:.2f} | {same} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
