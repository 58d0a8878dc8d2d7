"""Two cells for two red cells pressed together under one core.

Over red cells that touch along a wide contact the heatmap often stays
above ``inner`` from one cell into the other, so the watershed keeps them
as one cell. Such a cell is larger than one red cell and its shape holds
two round bodies: the distance from its pixels to its edge has two
maxima, each about a cell radius deep. :func:`split_joined_cells` cuts
such a cell between its maxima (a watershed of that distance), so each
body becomes a cell of its own.

Three things keep it off cells that are one: the cell must be at least
:data:`MIN_AREA` cell areas, its pieces at least :data:`MIN_PIECE`; a body
deeper than :data:`MAX_DEPTH` cell radii is a white cell, not a pair; and
a cell whose mean colour lies far from the smear's typical cell colour
(a white cell's nucleus, at any stain) is left alone.

It runs after the merge of wide cells in
:func:`napari_milseg.cells.label_cells` when it is given the cell
diameter and the image: ``segment(..., split_joined=True)``,
``milseg segment --split-joined`` and **split joined red cells** in the
Segment panel. It is off by default for its time (about 15 ms per
640x480 smear, see ``docs/benchmarks.md``).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage as ndi

#: A cell is looked at when it covers at least this many expected cell
#: areas (pi times the squared radius; a red cell of the CBC smears covers
#: about 0.7, two pressed together 1.2 and more).
MIN_AREA = 1.0
#: Each piece must cover at least this many expected cell areas.
MIN_PIECE = 0.3
#: A maximum of the distance to the cell's edge seeds a piece when it is
#: at least this many cell radii deep ...
PEAK_DEPTH = 0.35
#: ... and at least this many cell radii from a deeper one.
PEAK_SEPARATION = 0.5
#: A cell that holds a point this many cell radii from its edge is left
#: alone (a white cell; :mod:`napari_milseg.wide_cells` uses 1.35).
MAX_DEPTH = 1.2
#: A cell whose mean colour (RGB in 0..1) lies farther than this from the
#: smear's typical cell colour is left alone. On the 60 validation smears
#: 95 % of the red cells lie within 0.145 and 95 % of the white cells
#: beyond 0.164.
MAX_COLOUR = 0.15
#: The typical cell colour is taken from at most about this many pixels.
SAMPLE_PIXELS = 40_000
#: A quick first look for the maxima runs on the cell subsampled so that a
#: cell radius is about this many pixels, with the rules loosened by
#: :data:`COARSE`; only the cells that pass it are looked at in full.
GRID_RADIUS = 12
#: How much the quick look loosens the rules (depth and separation times
#: this, the largest depth divided by it). On the 120 maps of the
#: validation smears (CBC and the new look of the fine-tuning benchmark)
#: it passes 164 of 529 large cells and drops none that the full look
#: splits.
COARSE = 0.8


def split_joined_cells(
    labels: np.ndarray, diameter: float, image, rgb: bool | None = None
) -> np.ndarray:
    """Split the cells that hold two or more round bodies of red cells.

    Parameters
    ----------
    labels : ndarray, shape (H, W), int
        Cells, ``1..n`` (from the watershed and the merge of wide cells).
        Not modified.
    diameter : float
        Expected cell diameter in pixels of ``labels``.
    image : array-like, shape (H, W) or (H, W, C)
        The image the cells were found in (NumPy, or a lazy array that
        supports slicing: only a sample and the crops around the cells to
        cut are read).
    rgb : bool or None
        Whether the last axis of ``image`` holds channels; None guesses.

    Returns
    -------
    ndarray, shape (H, W), int32
        The labels with each split cell's first piece under its old number
        and the others under new numbers after ``labels.max()`` (``labels``
        itself, as int32, when nothing is split).

    Notes
    -----
    A cell is split when it covers at least :data:`MIN_AREA` cell areas,
    holds no point :data:`MAX_DEPTH` cell radii from its edge, the
    distance to its edge has maxima at least :data:`PEAK_DEPTH` radii deep
    and :data:`PEAK_SEPARATION` radii apart (after a quick, looser look on
    a grid of :data:`GRID_RADIUS` pixels per cell radius), whose watershed
    pieces all cover at least :data:`MIN_PIECE` cell areas and are each
    at least as convex (area over convex hull area) as the whole, and its mean
    colour lies within :data:`MAX_COLOUR` of the typical cell colour (the
    median of the mean colours of the larger half of the cells). On the
    60 validation smears of the CBC data it splits 21 cells (16 inside the
    image); by eye none of the 16 is a single cell cut wrongly, about half
    are clear pairs and the rest cannot be told (see the model card).
    """
    from .preprocess import channels_last, fill_transparent, intensity_range, transparent_pixels

    labels = np.asarray(labels)
    radius = diameter / 2
    cell_area = np.pi * radius**2
    area = np.bincount(labels.ravel())
    candidates = np.flatnonzero(area >= MIN_AREA * cell_area)
    candidates = candidates[candidates > 0]
    if candidates.size == 0:
        return labels.astype(np.int32, copy=False)
    rgb = channels_last(image, rgb)
    step = max(1, int(radius // GRID_RADIUS))
    boxes = ndi.find_objects(labels)
    out = None
    colour = None  # (value range, typical colour), read when first needed
    next_label = int(labels.max()) + 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NaN pixels were reported when the heatmap was made
        for cell in candidates:
            box = boxes[cell - 1]
            mask = labels[box] == cell
            if not _may_hold_two(mask[::step, ::step], radius / step):
                continue  # a quick look on a coarser grid finds no second body
            found = _peaks(mask, radius)
            if found is None:
                continue
            if colour is None:
                transparent = transparent_pixels(image, rgb)
                if transparent is not None:  # as segment does: ignore what lies under it
                    image = fill_transparent(image, transparent)
                value_range = intensity_range(image, rgb)
                colour = value_range, _typical_colour(labels, image, value_range, rgb)
            if not _usual_colour(image[box], mask, *colour, rgb):
                continue
            pieces = _pieces(mask, *found, cell_area)
            if pieces is None:
                continue
            if out is None:
                out = labels.astype(np.int32, copy=True)
            region = out[box]
            for piece in range(2, int(pieces.max()) + 1):
                region[pieces == piece] = next_label
                next_label += 1
    return labels.astype(np.int32, copy=False) if out is None else out


def _may_hold_two(mask: np.ndarray, radius: float) -> bool:
    """A quick, loose look for two maxima of the distance to a cell's edge.

    ``radius`` is the cell radius in pixels of ``mask``. The rules of
    :func:`_peaks` are loosened by :data:`COARSE`, and a ridge of equal
    maxima as long as their separation counts as two, so that this look
    passes the cells in which :func:`_peaks` finds two maxima.
    """
    depth = ndi.distance_transform_edt(np.pad(mask, 1))
    if depth.max() >= MAX_DEPTH * radius / COARSE:
        return False
    separation = max(1, int(COARSE * PEAK_SEPARATION * radius))
    top = depth == ndi.maximum_filter(depth, size=2 * separation + 1)
    top &= depth >= COARSE * PEAK_DEPTH * radius
    _, count = ndi.label(top, structure=np.ones((3, 3)))
    if count != 1:
        return count > 1
    ys, xs = np.nonzero(top)
    return bool(max(np.ptp(ys), np.ptp(xs)) >= separation)


def _peaks(mask: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Maxima ``(k, 2)``, ``k >= 2``, of the distance to a cell's edge, and that distance.

    ``radius`` is the cell radius in pixels of ``mask``. None when the
    cell is too deep (a white cell) or holds fewer than two maxima.
    """
    from skimage.feature import peak_local_max

    depth = ndi.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    if depth.max() >= MAX_DEPTH * radius:
        return None
    peaks = peak_local_max(
        depth,
        min_distance=max(1, int(PEAK_SEPARATION * radius)),
        threshold_abs=PEAK_DEPTH * radius,
        exclude_border=False,
    )
    return (peaks, depth) if len(peaks) >= 2 else None


def _pieces(
    mask: np.ndarray, peaks: np.ndarray, depth: np.ndarray, cell_area: float
) -> np.ndarray | None:
    """The watershed pieces (``1..k``) of a cell's mask from ``peaks``, or None to keep it whole."""
    from skimage.segmentation import watershed

    markers = np.zeros(mask.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    pieces = watershed(-depth, markers, mask=mask)
    if np.bincount(pieces.ravel())[1:].min() < MIN_PIECE * cell_area:
        return None
    whole = _solidity(mask)
    if min(_solidity(pieces == piece) for piece in range(1, len(peaks) + 1)) < whole:
        return None  # a cut that leaves a piece less round than the whole is no pair
    return pieces


def _solidity(mask: np.ndarray) -> float:
    """Area over the area of the convex hull of the mask's pixels (as squares)."""
    from scipy.spatial import ConvexHull

    rim = mask & ~ndi.binary_erosion(mask)
    ys, xs = np.nonzero(rim)
    corners = np.concatenate(
        [np.stack([ys + dy, xs + dx], axis=1) for dy in (0, 1) for dx in (0, 1)]
    )
    return float(mask.sum() / ConvexHull(corners).volume)


def _typical_colour(labels, image, value_range, rgb) -> np.ndarray:
    """The median of the cells' mean colours, over the larger half of the cells."""
    from .preprocess import to_rgb_float

    height, width = labels.shape
    step = max(1, int(np.sqrt(height * width / SAMPLE_PIXELS)))
    small = labels[::step, ::step].ravel()
    colours = to_rgb_float(np.asarray(image[::step, ::step]), value_range, rgb).reshape(-1, 3)
    pixels = np.bincount(small)
    means = np.stack(
        [np.bincount(small, weights=colours[:, c], minlength=pixels.size) for c in range(3)],
        axis=1,
    )[1:]
    pixels = pixels[1:]
    present = pixels > 0
    means, pixels = means[present] / pixels[present, None], pixels[present]
    return np.median(means[pixels >= np.median(pixels)], axis=0)


def _usual_colour(crop, mask, value_range, typical, rgb) -> bool:
    """Whether a cell's mean colour lies within :data:`MAX_COLOUR` of ``typical``."""
    from .preprocess import to_rgb_float

    colour = to_rgb_float(np.asarray(crop), value_range, rgb)[mask].mean(axis=0)
    return bool(np.linalg.norm(colour - typical) <= MAX_COLOUR)
