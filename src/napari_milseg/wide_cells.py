"""One cell for a white cell cut at its nucleus lobes.

A white cell is wider than a red cell, and the heatmap over it often has a
core on each lobe of its nucleus, so the watershed cuts it into pieces.
Red cells cut that way never fill a body this wide and round: the cells
that together fill one round body wider than :data:`WIDE_RADIUS` expected
cell radii, and whose union is convex, are merged into one cell.

:func:`merge_wide_cells` runs after the watershed of
:func:`napari_milseg.cells.label_cells` when it is given the cell diameter,
as :func:`napari_milseg.segment` and the Segment panel do.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

#: A body is wide when it holds a disc of this many expected cell radii (a
#: red cell holds about one; the white cells of the CBC smears 1.5 to 2).
WIDE_RADIUS = 1.35
#: The body is the mask opened with a disc of this share of that radius,
#: which takes off the red cells stuck to a white cell.
OPENING = 0.85
#: A cell belongs to a body when at least this share of it lies in the body.
BODY_SHARE = 0.5
#: The merged cell must be this convex (area over convex hull area) ...
MIN_SOLIDITY = 0.9
#: ... and at most this many expected cell areas.
MAX_AREA = 6.0
#: The bodies are found on a grid where a cell radius is about this many pixels.
GRID_RADIUS = 8


def merge_wide_cells(labels: np.ndarray, diameter: float) -> np.ndarray:
    """Merge the cells that together fill one wide, round body.

    Parameters
    ----------
    labels : ndarray, shape (H, W), int
        Cells from the watershed, ``1..n``. Not modified.
    diameter : float
        Expected cell diameter in pixels of ``labels``.

    Returns
    -------
    ndarray, shape (H, W), int32
        The labels with each merged group under one number, renumbered
        ``1..m`` in the order of their first cell (``labels`` itself, as
        int32, when nothing is merged).

    Notes
    -----
    The body is found on ``labels`` subsampled so that a cell radius is
    about :data:`GRID_RADIUS` pixels: the mask of all cells, opened with a
    disc of :data:`OPENING` times :data:`WIDE_RADIUS` cell radii, parts
    that hold a point :data:`WIDE_RADIUS` cell radii from the mask's edge.
    A group of two or more cells with at least :data:`BODY_SHARE` of their
    pixels in one such part is merged if their union, at full resolution,
    is convex (:data:`MIN_SOLIDITY`) and at most :data:`MAX_AREA` cell
    areas. On the 60 validation smears of the CBC data with the bundled
    model that merges 11 groups, all white cells (white-cell pieces 33 →
    12); on the 240 training smears 45 groups, of which we counted 42
    white cells and 3 groups of red cells (by eye).
    """
    labels = np.asarray(labels)
    radius = diameter / 2
    step = max(1, int(radius // GRID_RADIUS))
    small = labels[::step, ::step]
    mask = small > 0
    depth = ndi.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    wide = depth >= WIDE_RADIUS * radius / step
    if not wide.any():
        return labels.astype(np.int32, copy=False)
    disc = OPENING * WIDE_RADIUS * radius / step
    body = (ndi.distance_transform_edt(depth <= disc) <= disc) & mask
    parts, count = ndi.label(body)
    keep = np.zeros(count + 1, dtype=bool)
    keep[parts[wide]] = True
    keep[0] = False
    parts = np.where(keep[parts], parts, 0)
    n = int(labels.max()) + 1
    total = np.bincount(small.ravel(), minlength=n)
    # pixels of each (cell, part) pair; a cell's part is the one it has most in
    inside = parts > 0
    pairs, pixels = np.unique(
        small[inside].astype(np.int64) * (count + 1) + parts[inside], return_counts=True
    )
    cells, where = pairs // (count + 1), pairs % (count + 1)
    order = np.lexsort((pixels, cells))  # by cell, then by pixels: each cell's largest last
    last = np.r_[cells[order][1:] != cells[order][:-1], True]
    best = order[last]
    part_of = np.zeros(n, dtype=np.int64)
    share = np.zeros(n)
    part_of[cells[best]] = where[best]
    share[cells[best]] = pixels[best] / np.maximum(total[cells[best]], 1)
    in_body = share >= BODY_SHARE
    in_body[0] = False
    lookup = np.arange(n, dtype=np.int64)
    merged = False
    boxes = None
    for part in np.unique(part_of[in_body]):
        group = np.flatnonzero(in_body & (part_of == part))
        if group.size < 2:
            continue
        if boxes is None:
            boxes = ndi.find_objects(labels)
        members = [boxes[i - 1] for i in group]
        crop = tuple(
            slice(min(box[axis].start for box in members), max(box[axis].stop for box in members))
            for axis in (0, 1)
        )
        if not _one_cell(np.isin(labels[crop], group), radius):
            continue
        lookup[group] = group[0]
        merged = True
    if not merged:
        return labels.astype(np.int32, copy=False)
    # renumber 1..m, keeping the order of the first cell of each group
    used = np.unique(lookup[1:])
    renumber = np.zeros(n, dtype=np.int32)
    renumber[used] = np.arange(1, used.size + 1, dtype=np.int32)
    return renumber[lookup][labels]


def _one_cell(union: np.ndarray, radius: float) -> bool:
    """Whether a union of cells is convex (solidity) and small enough to be one cell."""
    from skimage.measure import regionprops

    if union.sum() > MAX_AREA * np.pi * radius**2:
        return False
    return regionprops(union.astype(np.uint8))[0].solidity >= MIN_SOLIDITY
