"""Heatmap to individual cells: the two-level, marker-controlled watershed.

Pixels above ``inner`` form cell cores; each connected core seeds one cell.
Pixels above ``outer`` are flooded from the seeds over the inverted heatmap,
so touching cells are cut where the heatmap dips between them. A region
above ``outer`` that holds no core at all (a faint cell, a cell cut by the
image edge, a platelet) is one cell of its own. This runs on
a cached heatmap and takes milliseconds, which is what lets the napari
sliders re-split live. Maps over a megapixel are flooded region by region,
and a region that runs across many tiles (the mask of a dense smear) tile
by tile with a margin: the same labels, with time and memory close to
linear in the pixels.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .params import DEFAULT_INNER, DEFAULT_OUTER, check_diameter, check_thresholds

_CONNECTIVITY = ndi.generate_binary_structure(2, 1)
#: Maps larger than this are flooded region by region (see ``_label_by_region``).
WHOLE_IMAGE_PIXELS = 1024 * 1024
#: Side of the squares that group regions for the piecewise flood.
REGION_TILE = 512
#: Above this many regions where cores meet, a map is flooded in one piece
#: instead of region by region (see ``_flood_shared``).
SHARED_CROPS = 24
#: Least margin (pixels) around a tile when a region spanning many tiles is
#: flooded tile by tile (see ``_flood_in_tiles``).
TILE_MARGIN = 128


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
    if heatmap.dtype.kind != "b":
        low, high = float(np.nanmin(heatmap)), float(np.nanmax(heatmap))
        if low < -1e-6 or high > 1 + 1e-6:
            hint = "; an 8-bit heatmap needs dividing by 255" if high <= 255 else ""
            raise ValueError(
                f"heatmap must hold probabilities between 0 and 1, got values from "
                f"{low:.4g} to {high:.4g} (dtype {heatmap.dtype}){hint}"
            )
    return heatmap


def label_cells(
    heatmap: np.ndarray,
    inner: float = DEFAULT_INNER,
    outer: float = DEFAULT_OUTER,
    coreless: bool = True,
    diameter: float | None = None,
    image=None,
    rgb: bool | None = None,
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
    diameter : float or None
        Expected cell diameter in pixels of the heatmap. When given, cells
        that together fill one round body much wider than a cell (a white
        cell cut at its nucleus lobes) become one cell, see
        :func:`napari_milseg.wide_cells.merge_wide_cells`.
        :func:`napari_milseg.segment` passes the diameter it used
        (``Segmentation.diameter``); None (the default) skips this step.
    image : array-like, shape (H, W) or (H, W, C), optional
        The image the heatmap was made from. With ``diameter`` as well, a
        cell that holds two round bodies of red cells pressed together is
        split into them, see
        :func:`napari_milseg.joined_cells.split_joined_cells` (the image
        tells a white cell, which is left whole, by its colour).
        ``segment(..., split_joined=True)`` passes it; None (the default)
        skips this step.
    rgb : bool or None
        Whether the last axis of ``image`` holds channels; None guesses.

    Returns
    -------
    ndarray, shape (H, W), int32
        0 for background, ``1..n`` for the cells, numbered in raster order of
        their cores (a coreless region is its own core).

    Raises
    ------
    ValueError
        If the thresholds are not ``0 < outer < inner < 1``, the heatmap is
        not a 2D numeric array, the diameter is not a positive number or the
        image is not of the heatmap's height and width.

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
    check_diameter(diameter)
    heatmap = _validate_heatmap(heatmap)
    if image is not None:
        image = _checked_image(image, heatmap.shape, rgb)
    labels = _watershed(heatmap, inner, outer, coreless)
    if diameter is None:
        return labels
    from .wide_cells import merge_wide_cells

    labels = merge_wide_cells(labels, diameter)
    if image is None:
        return labels
    from .joined_cells import split_joined_cells

    return split_joined_cells(labels, diameter, image, rgb)


def _checked_image(image, shape: tuple[int, int], rgb: bool | None):
    """``image`` as an array; ValueError unless it is one plane of numbers of ``shape``."""
    from .preprocess import describe, plane_shape

    if not hasattr(image, "shape") or not hasattr(image, "dtype"):
        image = np.asarray(image)  # a nested list, say; lazy arrays stay lazy
    if np.dtype(image.dtype).kind not in "buif":
        raise ValueError(f"the image's pixels must be numbers, got {describe(image)}")
    if plane_shape(image, rgb) != tuple(shape):
        raise ValueError(
            f"the image (shape {tuple(image.shape)}) must have the heatmap's height and "
            f"width {tuple(shape)}"
        )
    return image


def _watershed(heatmap: np.ndarray, inner: float, outer: float, coreless: bool) -> np.ndarray:
    """The two-level watershed of :func:`label_cells`."""
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
    if regions is not None:
        return _flood_shared(heatmap, markers, count, regions)
    # flood from the cores downhill; the heatmap's valleys become the borders
    return _flood(heatmap, markers, mask)


def _flood_shared(
    heatmap: np.ndarray, markers: np.ndarray, count: int, regions: np.ndarray
) -> np.ndarray:
    """The flood of :func:`_flood`, run only in the regions where cores meet.

    ``regions`` are the connected regions of the mask, each holding at
    least one of the ``count`` cores of ``markers``. A region with one core
    is that core's cell whole, as the flood would make it; the regions
    with two or more are flooded each in its own box (or, when there are
    more than :data:`SHARED_CROPS`, together in one flood). On the
    bundled model's maps of the CBC smears about one region in three holds
    two or more cores, with four fifths of the mask, and a flood of a
    640x480 map spends about a quarter of its time on the whole image
    before it floods a pixel (``benchmarks/speed.py``). The labels are
    those of one flood over the whole map.
    """
    seeded = markers > 0
    region_of = np.zeros(count + 1, dtype=np.int64)
    region_of[markers[seeded]] = regions[seeded]
    cores_in = np.bincount(region_of[1:], minlength=int(regions.max()) + 1)
    only = np.zeros(cores_in.size, dtype=np.int32)  # a one-core region's cell
    only[region_of[1:]] = np.arange(1, count + 1, dtype=np.int32)
    only[cores_in != 1] = 0
    labels = only[regions]
    shared = np.flatnonzero(cores_in >= 2)
    if shared.size > SHARED_CROPS:
        within = (cores_in >= 2)[regions]
        labels[within] = _flood(heatmap, markers, within)[within]
        return labels
    boxes = ndi.find_objects(regions)
    for region in shared:
        box = boxes[region - 1]
        inside = regions[box] == region
        flooded = _flood(heatmap[box], np.where(inside, markers[box], 0), inside)
        labels[box][inside] = flooded[inside]
    return labels


def _flood(heatmap: np.ndarray, markers: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Marker-controlled watershed of ``-heatmap`` within ``mask``, as int32.

    The same labels as ``skimage.segmentation.watershed(-heatmap, markers,
    mask=mask)`` (markers outside ``mask`` are ignored, and so is 0 outside
    it), but a marker pixel with no unlabelled neighbour in the mask is
    kept out of the flood and copied in afterwards. Such a pixel
    (inside a core, or anywhere in a coreless region) can give its label to
    no one, yet the flood would push it on its queue and pop it again;
    cores are about a quarter of the mask on the bundled model's maps, so
    this is a good part of a slider move (``benchmarks/speed.py``). Only
    pixels of equal heatmap value on a border between two cells may be
    settled the other way, as the queue breaks such ties by its order.
    """
    from skimage.segmentation import watershed

    free = mask & (markers == 0)
    reaches_free = free.copy()
    reaches_free[1:] |= free[:-1]
    reaches_free[:-1] |= free[1:]
    reaches_free[:, 1:] |= free[:, :-1]
    reaches_free[:, :-1] |= free[:, 1:]
    settled = mask & (markers > 0) & ~reaches_free
    flood = mask & ~settled
    labels = watershed(
        -heatmap.astype(np.float32, copy=False), np.where(flood, markers, 0), mask=flood
    )
    labels[settled] = markers[settled]
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
    in the crop that holds it: the same result as one watershed over the
    whole map, with time and working memory that grow with the regions,
    not with the image (a single watershed over 100 megapixels took
    minutes and gigabytes).

    A region wider or taller than two tiles (on a dense smear the mask of
    touching cells can run across the whole image) is flooded in squares
    of two tiles instead, see :func:`_flood_in_tiles`.
    """
    if regions is None:
        regions = ndi.label(mask, structure=_CONNECTIVITY)[0]
    count = int(regions.max())
    out = np.zeros(heatmap.shape, dtype=np.int32)
    boxes = ndi.find_objects(regions)
    spans = np.array([(box[0].stop - box[0].start, box[1].stop - box[1].start) for box in boxes])
    wide = np.zeros(count + 1, dtype=bool)
    wide[1:] = spans.max(axis=1) > 2 * tile
    starts = np.array([(box[0].start // tile, box[1].start // tile) for box in boxes])
    cols = int(starts[:, 1].max()) + 1
    group_of = np.zeros(count + 1, dtype=np.int64)
    group_of[1:] = starts[:, 0] * cols + starts[:, 1] + 1
    group_of[wide] = 0
    for group in np.unique(group_of[1:]):
        if group == 0:
            continue
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
        flooded = _flood(heatmap[crop], seeds, inside)
        out[crop][inside] = flooded[inside]
    if wide.any():
        _flood_in_tiles(heatmap, markers, wide[regions], 2 * tile, out)
    return out


def _flood_in_tiles(
    heatmap: np.ndarray, markers: np.ndarray, within: np.ndarray, tile: int, out: np.ndarray
) -> None:
    """Flood the pixels of ``within`` tile by tile, writing their labels to ``out``.

    Each ``tile`` x ``tile`` square is flooded in a crop ``margin`` pixels
    wider on every side and keeps only its own pixels. A pixel is flooded
    from a core of its own cell or of a neighbour, so a margin of twice the
    size of a core (the median of the markers' longer side, at least
    :data:`TILE_MARGIN` pixels) gives the labels of one flood over the whole
    region, without its queue of tens of millions of pixels. On the
    bundled model's maps of square mosaics of a smear up to 10000 pixels,
    whose mask is one region, the labels were identical to one flood
    (``benchmarks/watershed.py``); a margin of 64 pixels was not enough.
    Cells much larger than the cores, flooded from far outside their
    tile, could be cut at a tile's edge; a test floods a map far larger
    than its tiles against one flood.
    """
    boxes = [box for box in ndi.find_objects(markers) if box is not None]
    sides = [max(box[0].stop - box[0].start, box[1].stop - box[1].start) for box in boxes]
    margin = max(TILE_MARGIN, 2 * int(np.median(sides))) if sides else TILE_MARGIN
    rows, cols = heatmap.shape
    for y in range(0, rows, tile):
        for x in range(0, cols, tile):
            own = (slice(y, min(y + tile, rows)), slice(x, min(x + tile, cols)))
            if not within[own].any():
                continue
            y0, x0 = max(0, y - margin), max(0, x - margin)
            y1, x1 = min(rows, y + tile + margin), min(cols, x + tile + margin)
            crop = (slice(y0, y1), slice(x0, x1))
            flooded = _flood(heatmap[crop], markers[crop], within[crop])
            part = flooded[y - y0 : y - y0 + tile, x - x0 : x - x0 + tile]
            out[own] = np.where(within[own], part, out[own])
