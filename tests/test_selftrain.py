import numpy as np
import pytest

from napari_milseg.selftrain import (
    CellPatch,
    centre_target,
    composite,
    confident_cells,
    cut_patches,
    labels_to_masks,
)
from smears import cone, disc, small_spot


def test_centre_target_of_a_disc():
    mask = disc((41, 41), (20, 20), 15)
    target = centre_target([(mask, (0, 0))], mask.shape)
    assert target[20, 20] == pytest.approx(1.0)
    assert (target[~mask] == 0).all()
    assert target[mask].min() > 0.5
    assert target[20, 6] < 0.6  # next to the edge


def test_centre_target_counts_the_border_as_an_edge():
    mask = disc((40, 40), (20, 20), 15)
    target = centre_target([(mask, (-20, 0))], (20, 40))  # only the lower half shows
    assert target.max() == pytest.approx(1.0)
    peak = np.unravel_index(target.argmax(), target.shape)
    assert 0 < peak[0] < 19  # inside the visible half, not on the cut


def test_overlapping_cells_keep_two_peaks():
    a, b = disc((40, 70), (20, 22), 14), disc((40, 70), (20, 46), 14)
    target = centre_target([(a, (0, 0)), (b, (0, 0))], a.shape)
    assert target[20, 22] == pytest.approx(1.0) and target[20, 46] == pytest.approx(1.0)
    assert target[20, 34] < 0.8  # the dip between them is below the 0.8 core level


def test_labels_to_masks_round_trip():
    labels = np.zeros((10, 10), np.int32)
    labels[1:3, 1:4] = 1
    labels[5:9, 6:8] = 3
    masks = labels_to_masks(labels)
    assert [(m.shape, pos) for m, pos in masks] == [((2, 3), (1, 1)), ((4, 2), (5, 6))]


def test_confident_cells_keeps_single_cells_with_a_dip_between():
    shape = (80, 120)
    heat = np.maximum(cone(shape, (40, 35), 16), cone(shape, (40, 68), 16))
    fg = heat > 0.5
    cells, known = confident_cells(heat, fg, cell_diameter=32)
    assert cells.max() == 2
    assert cells[40, 35] != cells[40, 68]
    assert known[40, 110] and known[40, 35]


def test_confident_cells_rejects_a_merged_pair_and_a_triangle():
    shape = (80, 140)
    # two heavily overlapping cells on a saturated heatmap: one non-round blob
    pair = disc(shape, (40, 35), 16) | disc(shape, (40, 55), 16)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    triangle = (yy > 20) & (yy < 70) & (xx > 90) & (xx - 90 < (yy - 20) * 0.9)
    heat = np.where(pair | triangle, 0.95, 0.0)
    cells, _ = confident_cells(heat, pair | triangle, cell_diameter=32, split_clumps=False)
    assert cells.max() == 0


def test_confident_cells_cuts_an_overlapping_pair_between_its_centres():
    shape = (80, 100)
    pair = disc(shape, (40, 35), 16) | disc(shape, (40, 60), 16)
    heat = np.where(pair, 0.95, 0.0)  # one saturated blob, wide neck
    cells, known = confident_cells(heat, pair, cell_diameter=32)
    assert cells.max() == 2
    left, right = cells[40, 35], cells[40, 60]
    assert left > 0 and right > 0 and left != right
    # the cut runs between the two centres
    cut = [x for x in range(35, 61) if cells[40, x] != cells[40, x - 1]]
    assert len(cut) == 1 and 44 <= cut[0] <= 51
    assert known[pair].all()


def test_confident_cells_splits_touching_discs_at_a_narrow_neck():
    shape = (80, 140)
    pair = disc(shape, (40, 40), 16) | disc(shape, (40, 70), 16)  # touching, narrow neck
    heat = np.where(pair, 0.95, 0.0)  # saturated: the model does not separate them
    cells, _ = confident_cells(heat, pair, cell_diameter=32)
    assert cells.max() == 2
    assert cells[40, 40] != cells[40, 70]


def test_confident_cells_takes_small_cells_from_the_closer_look():
    heat, closer = small_spot((80, 120), (40, 90))
    big = cone(heat.shape, (40, 35), 16)
    heat, closer = np.maximum(heat, big), np.maximum(closer, big)
    fg = (heat > 0.3) | (closer > 0.5)
    cells, known = confident_cells(heat, fg, cell_diameter=32, split_clumps=False)
    assert cells.max() == 1 and cells[40, 90] == 0 and not known[40, 90]
    cells, known = confident_cells(
        heat, fg, cell_diameter=32, split_clumps=False, closer_look=closer
    )
    assert cells.max() == 2 and cells[40, 90] > 0 and known[40, 90]
    assert cells[40, 35] > 0 and cells[40, 35] != cells[40, 90]


def test_cut_patches_skips_cells_at_the_border_and_measures_transmittance():
    rgb = np.full((60, 80, 3), 0.8, np.float32)
    light = np.full_like(rgb, 0.8)
    cells = np.zeros((60, 80), np.int32)
    inner = disc((60, 80), (30, 40), 8)
    rgb[inner] = 0.4
    cells[inner] = 1
    cells[disc((60, 80), (2, 2), 5)] = 2  # at the border
    patches = cut_patches(rgb, light, cells)
    assert len(patches) == 1
    p = patches[0]
    assert p.mask.sum() == inner.sum()
    assert p.transmittance[p.mask.shape[0] // 2, p.mask.shape[1] // 2] == pytest.approx(0.5)
    assert p.transmittance[0, 0] == pytest.approx(1.0, abs=1e-3)


def test_composite_multiplies_transmittances_and_marks_each_cell():
    mask = disc((21, 21), (10, 10), 9)
    trans = np.where(mask[..., None], 0.5, 1.0).astype(np.float32)
    patch = CellPatch(transmittance=trans, mask=mask)
    background = np.full((64, 64, 3), 0.8, np.float32)
    image, target = composite(background, [patch], np.random.default_rng(0), coverage=(0.3, 0.3))
    assert image.shape == background.shape and target.shape == (64, 64)
    levels = np.unique(np.round(image[..., 0].astype(float), 3))
    # background, one cell, two overlapping cells
    assert set(levels.tolist()) <= {0.8, 0.4, 0.2}
    assert 0.4 in levels
    # every cell pixel is in the target, and nothing else
    assert ((image[..., 0] < 0.79) == (target > 0)).all()
