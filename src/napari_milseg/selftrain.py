"""Self-training that teaches the heatmap to separate touching cells.

MIL alone gives a map that covers every cell but saturates near 1 across
touching cells, so the 0.8 cores of neighbours merge. This module turns the
MIL model's own *confident* output into dense targets that peak at each
cell's centre and fall to 0.5 at its edge:

- :func:`confident_cells` keeps, from the current heatmap, the labelled
  cells that look like single cells (convex, plausible size) and the pixels
  that are surely background; everything else is left unsupervised.
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

#: Target value at a cell's edge and at its centre.
EDGE, CENTRE = 0.5, 1.0


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
) -> tuple[np.ndarray, np.ndarray]:
    """The model's own cells it can be trusted on, and sure background.

    Parameters
    ----------
    heatmap : ndarray, shape (H, W)
        Current heatmap at network scale.
    foreground : ndarray, shape (H, W), bool
        Rough colour-based foreground: background is only trusted where it
        agrees.
    cell_diameter : float
        Cell diameter in pixels at this scale.
    min_solidity : float
        Cells less convex than this are taken for unsplit clumps.

    Returns
    -------
    cells : ndarray, shape (H, W), int32
        Confident single cells, labelled ``1..n``.
    known : ndarray, shape (H, W), bool
        Where a target may be trusted: confident cells and sure background.
    """
    from skimage.measure import regionprops

    labels = label_cells(heatmap, 0.8, 0.5)
    cell_area = np.pi * cell_diameter**2 / 4
    keep = np.zeros(labels.max() + 1, dtype=bool)
    for region in regionprops(labels):
        if not 0.08 * cell_area <= region.area <= 6.0 * cell_area:
            continue
        if region.solidity < min_solidity:
            continue
        keep[region.label] = True
    cells = np.where(keep[labels], labels, 0)
    cells = _relabel(cells)
    margin = max(1, int(round(0.06 * cell_diameter)))
    near_anything = ndi.binary_dilation(foreground | (heatmap >= 0.3), iterations=margin)
    known = (cells > 0) | ~near_anything
    return cells, known


def _relabel(labels: np.ndarray) -> np.ndarray:
    ids = np.unique(labels)
    ids = ids[ids > 0]
    lookup = np.zeros(labels.max() + 1, dtype=np.int32)
    lookup[ids] = np.arange(1, ids.size + 1, dtype=np.int32)
    return lookup[labels]


def cut_patches(
    rgb: np.ndarray, light: np.ndarray, cells: np.ndarray, margin: int = 3
) -> list[CellPatch]:
    """Cut confident cells out of an image as transmittance patches.

    Cells touching the image border are skipped (they are not whole).

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
    """
    height, width = cells.shape
    patches = []
    for i, sl in enumerate(ndi.find_objects(cells), start=1):
        if sl is None:
            continue
        if sl[0].start == 0 or sl[1].start == 0 or sl[0].stop == height or sl[1].stop == width:
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
