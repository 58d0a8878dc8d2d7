"""Small cells that only the closer look (the image enlarged twice) resolves."""

import numpy as np
import pytest

from napari_milseg.cells import label_cells
from napari_milseg.small_cells import add_small_cells, small_cells
from smears import cone, disc, small_spot


def test_small_cells_finds_a_spot_only_the_closer_look_resolves():
    heat, closer = small_spot()
    cells = small_cells(heat, closer, cell_diameter=32)
    assert cells.max() == 1
    assert cells[40, 40] == 1
    assert cells.sum() < 0.1 * np.pi * 16**2  # a small cell, not a red cell's worth


@pytest.mark.parametrize(
    "case",
    ["core at the network's scale", "large", "on a cell's shoulder", "piece of a larger cell",
     "at the border"],
)
def test_small_cells_leaves_what_is_not_a_small_cell_alone(case):
    heat, closer = small_spot()
    if case == "core at the network's scale":  # a cell already found
        heat = np.maximum(heat, 0.9 * disc(heat.shape, (40, 40), 2))
    elif case == "large":  # a core of more than 0.1 cell areas
        closer = np.maximum(closer, 0.9 * disc(heat.shape, (40, 40), 6))
    elif case == "on a cell's shoulder":  # the map at the network's scale is high around it
        heat = np.maximum(heat, 0.6 * disc(heat.shape, (40, 40), 12))
    elif case == "piece of a larger cell":  # at twice the resolution, a cell around it
        closer = np.maximum(closer, 0.7 * disc(heat.shape, (40, 40), 12))
    else:
        heat, closer = small_spot(centre=(4, 40))
    assert small_cells(heat, closer, cell_diameter=32).max() == 0


def test_add_small_cells_lifts_only_the_small_cell_into_the_heatmap():
    shape = (80, 140)
    heat, closer = small_spot(shape, (40, 110))
    red = cone(shape, (40, 40), 16)  # a red cell both maps see, and that breaks into
    heat = np.maximum(heat, red)     # pieces at twice the resolution
    closer = np.maximum(closer, 0.7 * disc(shape, (40, 40), 16))
    closer = np.maximum(closer, 0.9 * disc(shape, (40, 30), 3))
    heat, closer = heat.astype(np.float32), closer.astype(np.float32)
    before = heat.copy()
    lifted = add_small_cells(heat, closer, cell_diameter=32)
    assert lifted.dtype == np.float32 and np.array_equal(heat, before)
    changed = lifted != heat
    assert changed.any() and not changed[:, :80].any()  # nothing moves on the red cell
    assert lifted[40, 110] == pytest.approx(0.95)
    assert label_cells(heat).max() == 1  # the faint spot is no cell at 0.8 / 0.5
    assert label_cells(lifted).max() == 2


def test_add_small_cells_without_small_cells_is_the_heatmap():
    heat = cone((60, 60), (30, 30), 16).astype(np.float32)
    assert np.array_equal(add_small_cells(heat, heat, cell_diameter=32), heat)
