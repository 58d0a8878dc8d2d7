"""Heatmap to individual cells: the two-level, marker-controlled watershed.

Pixels above ``inner`` form cell cores; each connected core seeds one cell.
Pixels above ``outer`` are flooded from the seeds over the inverted heatmap,
so touching cells are cut where the heatmap dips between them. A region
above ``outer`` that holds no core at all (a faint cell, a cell cut by the
image edge, a platelet) is one cell of its own. This runs on
a cached heatmap and takes milliseconds, which is what lets the napari
sliders re-split live. Maps over a megapixel are flooded region by region
(same result, time and memory close to linear in the pixels).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .params import DEFAULT_INNER, DEFAULT_OUTER, check_thresholds

_CONNECTIVITY = ndi.generate_binary_structure(2, 1)
#: Maps larger than this are flooded region by region (see ``_label_by_region``).
WHOLE_IMAGE_PIXELS = 1024 * 1024
#: Side of the squares that group regions for the piecewise flood.
REGION_TILE = 512


def _validate_heatmap(heatmap: np.ndarray) -> np.ndarray:
    heatmap = np.asarray(heatmap)
    if heatmap.ndim != 2:
        raise ValueError(
            f"heatmap must be 2D (H, W), got shape {heatmap.shape}; "
            "label the planes of a stack one by one"
        )
    if heatmap.size == 0:
        raise ValueError("heatmap is empty")
    if heatmap.dtype.kind not in "fiub":
        raise ValueError(f"heatmap must hold numbers, got dtype {heatmap.dtype}")
    return heatmap


def label_cells(
    heatmap: np.ndarray,
    inner: float = DEFAULT_INNER,
    outer: float = DEFAULT_OUTER,
    coreless: bool = True,
) -> np.ndarray:
    """Split a cell-probability map into labelled cells.

    Parameters
    ----------
    heatmap : ndarray, shape (H, W)
        Cell probability per pixel, in ``[0, 1]``. Not modified.
    inner : float
        Level above which pixels are cell cores; each connected core is one cell.
    outer : float
        Level above which pixels belong to a cell; must be below ``inner``.
    coreless : bool
        Whether a connected region above ``outer`` that holds no core is a
        cell too (the default). Such regions are cells the map is less sure
        of: faint cells, cells cut by the image edge, platelets. False
        leaves them 0 (self-training does, to draw its targets only from
        cells with a core).

    Returns
    -------
    ndarray, shape (H, W), int32
        0 for background, ``1..n`` for the cells, numbered in raster order of
        their cores (a coreless region is its own core).

    Raises
    ------
    ValueError
        If the thresholds are not ``0 < outer < inner < 1`` or the heatmap is
        not a 2D numeric array.

    See Also
    --------
    napari_milseg.segment : runs the network and this step.

    Examples
    --------
    Two touching blobs with a dip between them become two cells:

    >>> import numpy as np
    >>> h = np.array([[0.0, 0.6, 0.9, 0.6, 0.9, 0.6, 0.0]])
    >>> label_cells(h, inner=0.8, outer=0.5)
    array([[0, 1, 1, 1, 2, 2, 0]], dtype=int32)

    A faint blob with no core is a cell as well, unless ``coreless=False``:

    >>> h = np.array([[0.0, 0.9, 0.6, 0.0, 0.7, 0.0]])
    >>> label_cells(h)
    array([[0, 1, 1, 0, 2, 0]], dtype=int32)
    >>> label_cells(h, coreless=False)
    array([[0, 1, 1, 0, 0, 0]], dtype=int32)
    """
    check_thresholds(inner, outer)
    heatmap = _validate_heatmap(heatmap)
    from skimage.segmentation import watershed

    cores = heatmap > inner
    mask = heatmap > outer
    regions = None
    if coreless:
        regions, count = ndi.label(mask, structure=_CONNECTIVITY)
        has_core = np.zeros(count + 1, dtype=bool)
        has_core[regions[cores]] = True
        has_core[0] = True
        cores |= ~has_core[regions]
    markers, count = ndi.label(cores, structure=_CONNECTIVITY)
    if count == 0:
        return np.zeros(heatmap.shape, dtype=np.int32)
    if heatmap.size > WHOLE_IMAGE_PIXELS:
        return _label_by_region(heatmap, markers, mask, REGION_TILE, regions)
    # flood from the cores downhill; the heatmap's valleys become the borders
    labels = watershed(-heatmap.astype(np.float32, copy=False), markers, mask=mask)
    return labels.astype(np.int32, copy=False)


def _label_by_region(
    heatmap: np.ndarray,
    markers: np.ndarray,
    mask: np.ndarray,
    tile: int,
    regions: np.ndarray | None = None,
) -> np.ndarray:
    """The watershed of :func:`label_cells`, run piecewise on large maps.

    The flood never leaves the connected region of ``mask`` it starts in,
    so regions can be flooded apart. They are grouped by the ``tile`` x
    ``tile`` square their bounding box starts in, and each group is flooded
    in the crop that holds it. The result is the same as one watershed over
    the whole map, but time and working memory grow with the regions, not
    with the image (a single watershed over 100 megapixels took minutes and
    gigabytes).
    """
    from skimage.segmentation import watershed

    if regions is None:
        regions = ndi.label(mask, structure=_CONNECTIVITY)[0]
    count = int(regions.max())
    out = np.zeros(heatmap.shape, dtype=np.int32)
    boxes = ndi.find_objects(regions)
    starts = np.array([(box[0].start // tile, box[1].start // tile) for box in boxes])
    cols = int(starts[:, 1].max()) + 1
    group_of = np.zeros(count + 1, dtype=np.int64)
    group_of[1:] = starts[:, 0] * cols + starts[:, 1] + 1
    for group in np.unique(group_of[1:]):
        members = np.flatnonzero(group_of[1:] == group)
        y0 = min(boxes[i][0].start for i in members)
        y1 = max(boxes[i][0].stop for i in members)
        x0 = min(boxes[i][1].start for i in members)
        x1 = max(boxes[i][1].stop for i in members)
        crop = (slice(y0, y1), slice(x0, x1))
        inside = group_of[regions[crop]] == group
        seeds = np.where(inside, markers[crop], 0)
        if not seeds.any():
            continue
        flooded = watershed(-heatmap[crop].astype(np.float32), seeds, mask=inside)
        out[crop][inside] = flooded[inside]
    return out
