"""Small cells (platelets) that only a closer look at the image resolves.

The network sees an image rescaled so that a cell is 32 pixels across. A
platelet, about a fifth of a red cell, is then a few pixels: one or two of
the network's outputs (it scores every 4th pixel), so its heatmap rarely
reaches a core, and a platelet pressed against a red cell is a shoulder of
that cell. Run on the image enlarged twice, the same network marks most
platelets with a core of their own. :func:`small_cells` picks those cores;
self-training uses them as targets, and :func:`add_small_cells` lifts them
into a heatmap (``segment(..., closer_look=True)``, the default), at the
cost of a second pass of the network on four times the pixels.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

#: How many times the closer look enlarges the image (the rules of
#: :func:`small_cells` are set for twice).
ENLARGE = 2.0


def small_cells(
    heatmap: np.ndarray,
    closer_look: np.ndarray,
    cell_diameter: float,
    core: float = 0.8,
    max_area: float = 0.1,
    max_ring: float = 0.3,
    max_ring_share: float = 0.6,
) -> np.ndarray:
    """Small cells that a heatmap at twice the resolution resolves and this one does not.

    A platelet is a fifth of a red cell across: at the network's scale a
    few pixels, one or two of the network's outputs, so its heatmap
    rarely reaches a core. Seen at twice the resolution it mostly does.
    A core of ``closer_look`` is kept as a small cell when:

    - it is at most ``max_area`` cell areas large;
    - ``heatmap`` has no core on it (it is not part of a cell already found);
    - it stands alone: on a ring 0.06 to 0.14 cell diameters around it,
      the median of ``heatmap`` is below ``max_ring`` and less than
      ``max_ring_share`` of ``closer_look`` is above 0.5 (at twice the
      resolution a red cell breaks into several cores, each one surrounded
      by more of the same cell);
    - it lies clear of the image border by that ring.

    Parameters
    ----------
    heatmap : ndarray, shape (H, W)
        The model's heatmap of an image.
    closer_look : ndarray, shape (H, W)
        The model's heatmap of the same image enlarged twice, resized back
        to ``(H, W)``.
    cell_diameter : float
        Cell diameter in pixels of these maps.
    core, max_area, max_ring, max_ring_share : float
        The tests above.

    Returns
    -------
    ndarray, shape (H, W), int32
        The small cells (their core grown by 0.03 cell diameters), ``1..n``.
    """
    cores, count = ndi.label(closer_look > core)
    out = np.zeros(heatmap.shape, dtype=np.int32)
    if count == 0:
        return out
    area = np.bincount(cores.ravel())
    inner = max(1, int(round(0.06 * cell_diameter)))
    outer = max(inner + 1, int(round(0.14 * cell_diameter)))
    grow = max(1, int(round(0.03 * cell_diameter)))
    largest = max_area * np.pi * cell_diameter**2 / 4
    height, width = heatmap.shape
    # the quick tests for every core at once: small, on no core of the heatmap
    on_core = np.zeros(count + 1, dtype=bool)
    on_core[cores[heatmap >= core]] = True
    maybe = (area <= largest) & ~on_core
    found = 0
    for i, box in enumerate(ndi.find_objects(cores), start=1):
        if not maybe[i]:
            continue
        if (box[0].start < outer or box[1].start < outer
                or box[0].stop > height - outer or box[1].stop > width - outer):
            continue
        around = tuple(slice(max(0, s.start - outer - 1), s.stop + outer + 1) for s in box)
        this = cores[around] == i
        # steps to the core (4-connected): k iterations of binary_dilation
        # reach exactly the pixels within k steps, one transform for all three
        steps = ndi.distance_transform_cdt(~this, metric="taxicab")
        ring = (steps > inner) & (steps <= outer)
        if np.median(heatmap[around][ring]) >= max_ring:
            continue
        if (closer_look[around][ring] > 0.5).mean() >= max_ring_share:
            continue
        found += 1
        grown = (steps <= grow) & (out[around] == 0)
        out[around][grown] = found
    return out


def add_small_cells(
    heatmap: np.ndarray, closer_look: np.ndarray, cell_diameter: float
) -> np.ndarray:
    """The heatmap with the small cells of a closer look lifted into it.

    Where :func:`small_cells` finds a small cell, the heatmap takes the
    larger of its own value and the closer look's; everywhere else it is
    unchanged. The sliders then split it as any heatmap: a small cell
    whose closer look rises above **inner** is a cell of its own.

    Parameters
    ----------
    heatmap : ndarray, shape (H, W)
        The model's heatmap of an image. Not modified.
    closer_look : ndarray, shape (H, W)
        The model's heatmap of the same image enlarged twice, resized back
        to ``(H, W)``.
    cell_diameter : float
        Cell diameter in pixels of these maps.

    Returns
    -------
    ndarray, shape (H, W), float32
    """
    small = small_cells(heatmap, closer_look, cell_diameter) > 0
    return np.where(small, np.maximum(heatmap, closer_look), heatmap).astype(np.float32)
