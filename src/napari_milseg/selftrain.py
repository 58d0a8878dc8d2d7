"""Self-training that teaches the heatmap to separate touching cells.

MIL alone gives a map that covers every cell but saturates near 1 across
touching cells, so the 0.8 cores of neighbours merge. This module turns the
MIL model's own *confident* output into dense targets that peak at each
cell's centre and fall to 0.5 at its edge:

- :func:`confident_cells` keeps, from the current heatmap, the labelled
  cells that look like single cells (convex, plausible size), cuts the
  clumps that remain at their distance-transform peaks, and marks the pixels
  that are surely background; everything else is left unsupervised.
- :func:`napari_milseg.small_cells.small_cells` adds the small cells
  (platelets) that the model's own heatmap of the image at twice the
  resolution shows and its heatmap at the network's scale does not.
- :func:`centre_target` draws the target: inside a cell,
  ``0.5 + 0.5 * d / d_max`` with ``d`` the distance to the cell's edge, so
  the 0.5 level is the outline and the 0.8 level a core in the middle.
- :func:`composite` pastes confident cells onto synthesized background,
  overlapping as real cells do under transmitted light (their transmittances
  multiply), so the network also sees clumps whose cells are known.

No annotation is used: every cell comes from the model's own output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .cells import label_cells
from .small_cells import small_cells

#: Target value at a cell's edge and at its centre.
EDGE, CENTRE = 0.5, 1.0
#: Largest area of a single cell relative to its inscribed disc (a disc is 1,
#: an ellipse of axis ratio 1.3 is 1.3, two overlapping discs about 1.6).
MAX_DISC_RATIO = 1.35


@dataclass(frozen=True)
class CellPatch:
    """One confident cell cut out of a real image.

    Attributes
    ----------
    transmittance : ndarray, shape (h, w, 3), float32
        Image divided by the slide's light: 1 where the cell absorbs nothing.
    mask : ndarray, shape (h, w), bool
        The cell.
    """

    transmittance: np.ndarray
    mask: np.ndarray

    @property
    def radius(self) -> float:
        return float(np.sqrt(self.mask.sum() / np.pi))


def centre_target(masks: list[tuple[np.ndarray, tuple[int, int]]], shape) -> np.ndarray:
    """Target map peaking at cell centres, 0.5 on outlines, 0 outside.

    Parameters
    ----------
    masks : list of (mask, (y, x))
        Each cell's boolean mask and the position of its top-left corner in
        the output (may lie partly outside it). Cells may overlap; the larger
        target wins.
    shape : tuple of int
        ``(H, W)`` of the output. Its border counts as an edge: a cell cut by
        the border peaks inside the visible part, as the network, which sees
        the border, can learn.

    Returns
    -------
    ndarray, shape (H, W), float32
    """
    out = np.zeros(shape, dtype=np.float32)
    height, width = shape
    for mask, (y, x) in masks:
        y0, x0 = max(y, 0), max(x, 0)
        y1, x1 = min(y + mask.shape[0], height), min(x + mask.shape[1], width)
        if y1 <= y0 or x1 <= x0:
            continue
        visible = mask[y0 - y : y1 - y, x0 - x : x1 - x]
        if not visible.any():
            continue
        dist = ndi.distance_transform_edt(np.pad(visible, 1))[1:-1, 1:-1]
        value = np.where(visible, EDGE + (CENTRE - EDGE) * dist / dist.max(), 0.0)
        np.maximum(out[y0:y1, x0:x1], value, out=out[y0:y1, x0:x1])
    return out


def labels_to_masks(labels: np.ndarray) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """Split a label image into ``(mask, (y, x))`` pairs for :func:`centre_target`."""
    out = []
    for i, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        out.append((labels[sl] == i, (sl[0].start, sl[1].start)))
    return out


def confident_cells(
    heatmap: np.ndarray,
    foreground: np.ndarray,
    cell_diameter: float,
    min_solidity: float = 0.9,
    min_ellipse_fit: float = 0.9,
    max_cut_level: float = 0.7,
    max_neck: float = 0.55,
    split_clumps: bool = True,
    clump_peak_distance: float = 0.3,
    closer_look: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The model's own cells it can be trusted on, and sure background.

    Cells are looked for in two tiers:

    1. The model's own split (:func:`label_cells` at 0.8 / 0.5), where the
       model (heatmap above 0.5) and the colour foreground agree, which trims
       a saturated heatmap's wide edges to the cell outline. A cut is
       believed only where the heatmap dips along it (its highest point, the
       saddle between the two cores, below ``max_cut_level``): on a saturated
       map the watershed line between two cores is arbitrary and would halve
       cells.
    2. Inside the rest of the colour foreground, a shape prior: it is split
       at its distance-transform peaks, and a piece is kept only if the neck
       joining it to its neighbours is narrow (at most ``max_neck`` of its own
       inscribed radius), as between two round cells that merely touch.

    3. With ``closer_look``, the heatmap of the same image at twice the
       resolution: the small cells it shows where this heatmap shows none
       (:func:`napari_milseg.small_cells.small_cells`: platelets, which at
       the network's scale are a
       few pixels across and rarely reach a core).
    4. With ``split_clumps`` (the default), what is left of the model's own
       mask (heatmap above 0.5, grown by two pixels, within the colour
       foreground) is cut at its distance-transform peaks, at least
       ``clump_peak_distance`` cell diameters apart, and every piece of a
       plausible size is kept. These cuts are a guess from shape alone, but
       without them a dense smear, one connected clump, gives no target at
       all and the heatmap never learns to dip between pressed cells.

    Every piece kept by tiers 1 and 2 must look like one cell: a plausible size, convex
    (``min_solidity``), filling the ellipse of its second moments
    (``min_ellipse_fit``: 1 for a disc, 0.83 for a triangle) and not much
    larger than its inscribed disc (``MAX_DISC_RATIO``; two merged cells are
    about 1.6 times as large).

    Parameters
    ----------
    heatmap : ndarray, shape (H, W)
        Current heatmap at network scale.
    foreground : ndarray, shape (H, W), bool
        Rough colour-based foreground (see :func:`negatives.estimate_foreground`).
    cell_diameter : float
        Cell diameter in pixels at this scale.
    min_solidity, min_ellipse_fit, max_cut_level, max_neck : float
        Thresholds of the tests above.
    split_clumps : bool
        Whether to add tier 4.
    clump_peak_distance : float
        Least distance between two tier-4 cell centres, in cell diameters.
    closer_look : ndarray, shape (H, W), optional
        The model's heatmap of the same image at twice the resolution,
        resized back to this one's shape; adds tier 3.

    Returns
    -------
    cells : ndarray, shape (H, W), int32
        Confident single cells, labelled ``1..n``.
    known : ndarray, shape (H, W), bool
        Where a target may be trusted: confident cells and pixels well clear
        of the colour foreground.
    """
    mask = (heatmap > 0.5) & foreground
    labels = label_cells(heatmap, 0.8, 0.5, coreless=False)
    pieces, _ = ndi.label(mask & (labels > 0))
    # tier 1: one candidate per (connected piece, model label) pair
    combined = pieces.astype(np.int64) * (int(labels.max()) + 1) + labels
    _, candidates = np.unique(np.where(pieces > 0, combined, 0), return_inverse=True)
    candidates = candidates.reshape(labels.shape).astype(np.int32)
    keep = _single_cells(candidates, heatmap, cell_diameter, min_solidity, min_ellipse_fit)
    keep &= _border_level(candidates, heatmap) <= max_cut_level
    model_cells = keep[candidates]

    # tier 2: split the rest at distance-transform peaks. It works on the colour
    # foreground alone, so that objects the model has stopped seeing (small
    # platelets next to red cells, say) can still come back as confident cells
    rest = foreground & ~ndi.binary_dilation(model_cells)
    dist = ndi.distance_transform_edt(np.pad(rest, 1))[1:-1, 1:-1]
    regions = _split_at_peaks(rest, dist, int(0.3 * cell_diameter), 0.15 * cell_diameter)
    keep2 = _single_cells(regions, heatmap, cell_diameter, min_solidity, min_ellipse_fit)
    inscribed = np.zeros(len(keep2))
    if len(keep2) > 1:
        inscribed[1:] = ndi.maximum(dist, regions, np.arange(1, len(keep2)))
    keep2 &= _border_level(regions, dist) <= max_neck * inscribed

    cells = np.where(model_cells, candidates, 0)
    cells = np.where(keep2[regions], regions + int(candidates.max()), cells)
    if closer_look is not None:
        # tier 3: small cells that only the closer look resolves
        small = small_cells(heatmap, closer_look, cell_diameter)
        free = (small > 0) & ~ndi.binary_dilation(cells > 0)
        cells = np.where(free, small + int(cells.max()), cells)
    if split_clumps:
        # tier 4: what is left of the model's own mask is split at distance peaks
        offset = int(cells.max())
        gate = foreground & ndi.binary_dilation(heatmap > 0.5, iterations=2)
        clumps = _split_clumps(
            gate & ~ndi.binary_dilation(cells > 0), cell_diameter, clump_peak_distance
        )
        cells = np.where(clumps > 0, clumps + offset, cells)
    cells = _relabel(cells)
    margin = max(1, int(round(0.06 * cell_diameter)))
    known = (cells > 0) | ~ndi.binary_dilation(foreground, iterations=margin)
    return cells, known


def _split_at_peaks(
    mask: np.ndarray, dist: np.ndarray, min_distance: int, depth: float
) -> np.ndarray:
    """Watershed of ``mask`` on ``-dist`` from the peaks of ``dist``.

    Peaks are at least ``min_distance`` pixels apart and ``depth`` high;
    every connected part of the mask is split on its own.
    """
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    peaks = peak_local_max(
        dist,
        min_distance=max(1, min_distance),
        threshold_abs=depth,
        labels=ndi.label(mask)[0],
        exclude_border=False,
    )
    markers = np.zeros(mask.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return watershed(-dist, markers, mask=mask).astype(np.int32)


def _split_clumps(mask: np.ndarray, cell_diameter: float, peak_distance: float) -> np.ndarray:
    """Cut a mask of clumped cells at the peaks of its distance transform.

    Peaks at least ``peak_distance`` cell diameters apart and 0.2 diameters
    deep seed a watershed on the (lightly smoothed) distance map; pieces
    smaller than 0.15 or larger than 2.5 cell areas are dropped.
    """
    if not mask.any():
        return np.zeros(mask.shape, dtype=np.int32)
    dist = ndi.gaussian_filter(ndi.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1], 1.0)
    pieces = _split_at_peaks(
        mask, dist, int(round(peak_distance * cell_diameter)), 0.2 * cell_diameter
    )
    cell_area = np.pi * cell_diameter**2 / 4
    sizes = np.bincount(pieces.ravel(), minlength=int(pieces.max()) + 1)
    ok = (sizes >= 0.15 * cell_area) & (sizes <= 2.5 * cell_area)
    ok[0] = False
    return np.where(ok[pieces], pieces, 0)


def _single_cells(
    labels: np.ndarray, heatmap: np.ndarray, cell_diameter: float, min_solidity: float,
    min_ellipse_fit: float,
) -> np.ndarray:
    """Which labels look like one cell (size, convexity, ellipse, inscribed disc)."""
    from skimage.measure import regionprops

    cell_area = np.pi * cell_diameter**2 / 4
    keep = np.zeros(int(labels.max()) + 1, dtype=bool)
    for region in regionprops(labels):
        if not 0.08 * cell_area <= region.area <= 6.0 * cell_area:
            continue
        if region.solidity < min_solidity:
            continue
        ellipse = np.pi * region.axis_major_length * region.axis_minor_length / 4
        if ellipse <= 0 or region.area / ellipse < min_ellipse_fit:
            continue
        y0, x0, y1, x1 = region.bbox
        inside = np.pad(region.image, 1)
        radius = ndi.distance_transform_edt(inside).max()
        if region.area > MAX_DISC_RATIO * np.pi * radius**2:
            continue
        keep[region.label] = True
    return keep


def _border_level(labels: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per label, the highest of ``values`` where it touches another label (0 if nowhere).

    Along the line between two cells that is the saddle: the heatmap's
    level at the pass between their cores, or the half-width of the neck
    joining two round shapes.
    """
    count = int(labels.max())
    contact = np.zeros(labels.shape, dtype=bool)
    for axis in (0, 1):
        for step in (1, -1):
            other = np.roll(labels, step, axis=axis)
            contact |= (other != labels) & (other > 0) & (labels > 0)
    level = np.zeros(count + 1)
    if contact.any() and count:
        with np.errstate(invalid="ignore", divide="ignore"):
            highest = ndi.maximum(values, np.where(contact, labels, 0), np.arange(1, count + 1))
        level[1:] = np.nan_to_num(np.asarray(highest, dtype=float), nan=0.0)
    return level


def _relabel(labels: np.ndarray) -> np.ndarray:
    ids = np.unique(labels)
    ids = ids[ids > 0]
    lookup = np.zeros(labels.max() + 1, dtype=np.int32)
    lookup[ids] = np.arange(1, ids.size + 1, dtype=np.int32)
    return lookup[labels]


def cut_patches(
    rgb: np.ndarray, light: np.ndarray, cells: np.ndarray, margin: int = 3, border: int = 4
) -> list[CellPatch]:
    """Cut confident cells out of an image as transmittance patches.

    Cells within ``border`` pixels of the image edge are skipped: they may be
    cut by it (the foreground estimate stops a few pixels short of the edge).

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), float
        The image.
    light : ndarray, shape (H, W, 3), float
        Its background light (see :func:`negatives.background_light`).
    cells : ndarray, shape (H, W), int
        Confident cells from :func:`confident_cells`.
    margin : int
        Pixels kept around each cell.
    border : int
        Cells closer than this to the image edge are not cut out.
    """
    height, width = cells.shape
    patches = []
    for i, sl in enumerate(ndi.find_objects(cells), start=1):
        if sl is None:
            continue
        if min(sl[0].start, sl[1].start, height - sl[0].stop, width - sl[1].stop) < border:
            continue
        y0, y1 = max(0, sl[0].start - margin), min(height, sl[0].stop + margin)
        x0, x1 = max(0, sl[1].start - margin), min(width, sl[1].stop + margin)
        mask = cells[y0:y1, x0:x1] == i
        alpha = ndi.gaussian_filter(ndi.binary_dilation(mask).astype(np.float32), 1.0)
        trans = np.clip(rgb[y0:y1, x0:x1] / np.maximum(light[y0:y1, x0:x1], 1e-3), 0.0, 1.3)
        trans = 1.0 + alpha[..., None] * (trans - 1.0)
        patches.append(CellPatch(transmittance=trans.astype(np.float32), mask=mask))
    return patches


def composite(
    background: np.ndarray,
    patches: list[CellPatch],
    rng: np.random.Generator,
    coverage: tuple[float, float] = (0.3, 0.8),
    min_gap: float = 0.55,
) -> tuple[np.ndarray, np.ndarray]:
    """Paste cells onto a background, touching and overlapping like a real smear.

    Transmittances multiply (Beer-Lambert), so where two cells overlap the
    image darkens as it does under a brightfield microscope. Half of the
    cells are placed against one already placed, to make clumps.

    Parameters
    ----------
    background : ndarray, shape (S, S, 3), float
        Cell-free image (see :func:`negatives.synthesize_negative`).
    patches : list of CellPatch
        Cells to draw from (with replacement, randomly flipped and turned).
    rng : numpy.random.Generator
    coverage : (float, float)
        Range of the share of the area to cover with cells.
    min_gap : float
        Smallest centre distance between two cells, as a share of the sum of
        their radii (0.5 lets a cell cover its neighbour's centre half-way).

    Returns
    -------
    image : ndarray, shape (S, S, 3), float32
    target : ndarray, shape (S, S), float32
        From :func:`centre_target`.
    """
    height, width = background.shape[:2]
    trans = np.ones_like(background, dtype=np.float32)
    goal = rng.uniform(*coverage) * height * width
    placed: list[tuple[float, float, float]] = []
    masks = []
    area = 0.0
    for _ in range(200):
        if area >= goal or not patches:
            break
        patch = patches[int(rng.integers(len(patches)))]
        t, m = patch.transmittance, patch.mask
        turns, flip = int(rng.integers(4)), bool(rng.integers(2))
        if flip:
            t, m = t[:, ::-1], m[:, ::-1]
        t, m = np.rot90(t, turns), np.rot90(m, turns)
        radius = patch.radius
        if placed and rng.random() < 0.5:
            cy, cx, cr = placed[int(rng.integers(len(placed)))]
            angle = rng.uniform(0, 2 * np.pi)
            dist = rng.uniform(min_gap, 1.0) * (radius + cr)
            y, x = cy + dist * np.sin(angle), cx + dist * np.cos(angle)
        else:
            y, x = rng.uniform(0, height), rng.uniform(0, width)
        if any(np.hypot(y - py, x - px) < min_gap * (radius + pr) for py, px, pr in placed):
            continue
        top, left = int(round(y - m.shape[0] / 2)), int(round(x - m.shape[1] / 2))
        y0, x0 = max(top, 0), max(left, 0)
        y1, x1 = min(top + m.shape[0], height), min(left + m.shape[1], width)
        if y1 <= y0 or x1 <= x0:
            continue
        trans[y0:y1, x0:x1] *= t[y0 - top : y1 - top, x0 - left : x1 - left]
        placed.append((y, x, radius))
        masks.append((np.ascontiguousarray(m), (top, left)))
        area += float(m[y0 - top : y1 - top, x0 - left : x1 - left].sum())
    image = np.clip(background * trans, 0.0, 1.0).astype(np.float32)
    return image, centre_target(masks, (height, width))
