"""Synthetic smears with known cells, for training-code tests."""

from __future__ import annotations

import numpy as np


def disc(shape, centre, radius) -> np.ndarray:
    """Boolean disc."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def cone(shape, centre, radius):
    """A heatmap blob: 1 at the centre, 0.5 at ``radius``, 0 beyond."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    r = np.hypot(yy - centre[0], xx - centre[1]) / radius
    return np.where(r <= 1, 1 - 0.5 * r, 0.0)


def small_spot(shape=(80, 80), centre=(40, 40)):
    """A platelet: faint at the network's scale, a core at twice the resolution."""
    return 0.4 * cone(shape, centre, 4), 0.95 * cone(shape, centre, 4)


def lobed_cell(diameter: float = 20, shape=(80, 80)) -> np.ndarray:
    """A heatmap of one wide cell (1.8 cell diameters) with a core on each of three lobes.

    A white cell as the network sees it: the watershed alone makes three
    cells of it, the merge of wide cells at ``diameter`` one.
    """
    centre = (shape[0] // 2, shape[1] // 2)
    heat = np.where(disc(shape, centre, 0.9 * diameter), 0.7, 0.0)
    for angle in (0, 2 * np.pi / 3, 4 * np.pi / 3):
        lobe = (centre[0] + 8 * np.sin(angle), centre[1] + 8 * np.cos(angle))
        heat[disc(shape, lobe, 3)] = 0.9
    return heat.astype(np.float32)


def smear(
    shape=(96, 128), centres=((30, 30), (60, 90)), radius=12, seed=0, pale_centre=False,
    background=(0.85, 0.88, 0.9), cell=(0.75, 0.45, 0.5),
) -> tuple[np.ndarray, np.ndarray]:
    """A brightfield-like smear: textured bright background, pinkish discs.

    Returns
    -------
    rgb : ndarray, shape (H, W, 3), float32 in [0, 1]
    truth : ndarray, shape (H, W), int32
        Cell ``i`` (1-based) where disc ``i`` is.
    """
    rng = np.random.default_rng(seed)
    rgb = np.empty((*shape, 3), np.float32)
    rgb[:] = background
    truth = np.zeros(shape, np.int32)
    for i, c in enumerate(centres, start=1):
        d = disc(shape, c, radius)
        rgb[d] = cell
        if pale_centre:
            rgb[disc(shape, c, radius * 0.35)] = np.array(background) - 0.03
        truth[d & (truth == 0)] = i
    rgb += rng.normal(0, 0.01, rgb.shape).astype(np.float32)  # camera noise on everything
    return np.clip(rgb, 0, 1), truth


#: Expected cell diameter (px) of :func:`pair` and :func:`with_neighbours`.
JOINED_DIAMETER = 24
RED = (0.75, 0.45, 0.5)
BACKGROUND = (0.85, 0.88, 0.9)


def painted(labels: np.ndarray, colours: dict[int, tuple]) -> np.ndarray:
    """An RGB uint8 picture of ``labels``: each cell in its colour (RED by default)."""
    image = np.empty((*labels.shape, 3), np.float32)
    image[:] = BACKGROUND
    for cell in np.unique(labels[labels > 0]):
        image[labels == cell] = colours.get(int(cell), RED)
    return np.round(image * 255).astype(np.uint8)


def pair(shape=(60, 90), gap=0.8 * JOINED_DIAMETER, radius=0.4 * JOINED_DIAMETER) -> np.ndarray:
    """One cell made of two overlapping red-cell discs side by side."""
    centre = shape[0] // 2, shape[1] // 2
    left = disc(shape, (centre[0], centre[1] - gap / 2), radius)
    right = disc(shape, (centre[0], centre[1] + gap / 2), radius)
    return (left | right).astype(np.int32)


def with_neighbours(cell: np.ndarray) -> np.ndarray:
    """``cell`` (label 1) beside three lone red cells, labels 2..4, on a wider canvas."""
    height, width = cell.shape
    d = JOINED_DIAMETER
    labels = np.zeros((height, width + 3 * d + 12), np.int32)
    labels[:, :width] = cell
    for i in range(3):
        labels[disc(labels.shape, (height // 2, width + 6 + d // 2 + i * d), 0.4 * d)] = i + 2
    return labels
