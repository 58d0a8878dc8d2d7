"""Tests for napari_milseg.wide_cells: one cell for a wide cell cut into pieces."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_milseg import label_cells
from napari_milseg.wide_cells import MAX_AREA, MIN_SOLIDITY, WIDE_RADIUS, merge_wide_cells
from smears import disc, lobed_cell

D = 20  # expected cell diameter, px


def sectors(mask: np.ndarray, centre, n: int, first: int = 1) -> np.ndarray:
    """Label ``mask`` in ``n`` pie slices around ``centre`` (a cell cut at its lobes)."""
    yy, xx = np.mgrid[: mask.shape[0], : mask.shape[1]]
    angle = np.arctan2(yy - centre[0], xx - centre[1]) + np.pi
    piece = np.minimum((angle / (2 * np.pi) * n).astype(int), n - 1)
    return np.where(mask, piece + first, 0).astype(np.int32)


def test_a_wide_round_cell_in_pieces_becomes_one_cell():
    shape = (80, 120)
    wide = disc(shape, (40, 40), 1.8 * D / 2)  # a white cell
    labels = sectors(wide, (40, 40), 3)
    labels[disc(shape, (40, 100), D / 2)] = 4  # a red cell apart
    out = merge_wide_cells(labels, D)
    assert out.dtype == np.int32
    assert len(np.unique(out[wide])) == 1
    assert out[40, 40] == 1 and out[40, 100] == 2  # renumbered 1..m, in order
    assert out.max() == 2
    np.testing.assert_array_equal(out > 0, labels > 0)  # nothing grows or shrinks


def test_cells_of_red_cell_size_are_left_apart():
    shape = (60, 120)
    labels = np.zeros(shape, np.int32)
    # a chain of touching cells: no point of it is wide
    for i, x in enumerate(range(20, 110, 18), start=1):
        labels[disc(shape, (30, x), D / 2) & (labels == 0)] = i
    np.testing.assert_array_equal(merge_wide_cells(labels, D), labels)


def test_cells_stuck_to_a_wide_cell_are_not_merged_into_it():
    shape = (80, 120)
    centre = (40, 50)
    wide = disc(shape, centre, 1.7 * D / 2)
    labels = sectors(wide, centre, 2)
    left, right = disc(shape, (40, 17), D / 2) & ~wide, disc(shape, (40, 83), D / 2) & ~wide
    labels[left], labels[right] = 3, 4
    out = merge_wide_cells(labels, D)
    assert len(np.unique(out[wide])) == 1
    assert out[40, 12] not in (0, out[centre]) and out[40, 88] not in (0, out[centre])
    assert out.max() == 3


def test_a_small_cell_on_the_rim_of_a_wide_cell_stays_apart():
    # a platelet pressed on a white cell: their union is still round, but the
    # opening that finds the body takes the platelet off it
    shape = (80, 80)
    centre, radius = (40, 40), 1.8 * D / 2
    wide = disc(shape, centre, radius)
    labels = sectors(wide, centre, 2)
    platelet = disc(shape, (40, 40 + radius), 0.45 * D / 2) & ~wide
    labels[platelet] = 3
    out = merge_wide_cells(labels, D)
    assert len(np.unique(out[wide])) == 1
    assert out[40, int(40 + radius + 2)] not in (0, out[centre])


def test_a_wide_body_that_is_not_convex_is_left_apart():
    # a disc with a quarter cut out: wide enough, but not one round cell
    shape = (90, 90)
    centre = (45, 45)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    pacman = disc(shape, centre, 2.6 * D / 2) & ~((yy < centre[0]) & (xx > centre[1]))
    depth = ndi.distance_transform_edt(pacman)
    assert depth.max() >= WIDE_RADIUS * D / 2  # the rule's first test passes ...
    labels = sectors(pacman, centre, 3)
    from skimage.measure import regionprops

    assert regionprops(pacman.astype(np.uint8))[0].solidity < MIN_SOLIDITY  # ... not this one
    np.testing.assert_array_equal(merge_wide_cells(labels, D), labels)


def test_a_round_field_larger_than_a_cell_is_left_apart():
    # a round patch of many pieces far larger than any cell (a dense field)
    shape = (120, 120)
    field = disc(shape, (60, 60), 3.0 * D / 2)
    assert field.sum() > MAX_AREA * np.pi * (D / 2) ** 2
    labels = sectors(field, (60, 60), 6)
    np.testing.assert_array_equal(merge_wide_cells(labels, D), labels)


def test_large_diameters_work_on_the_subsampled_grid():
    shape = (400, 500)
    wide = disc(shape, (200, 200), 1.8 * 50)
    labels = sectors(wide, (200, 200), 4)
    labels[disc(shape, (200, 420), 50)] = 5
    out = merge_wide_cells(labels, 100.0)
    assert len(np.unique(out[wide])) == 1 and out.max() == 2


def test_label_cells_merges_only_when_given_the_diameter():
    heat = lobed_cell(D)  # one wide blob whose map has a core on each of three lobes
    assert label_cells(heat).max() == 3
    assert label_cells(heat, diameter=D).max() == 1
    assert label_cells(heat, diameter=5 * D).max() == 3  # not wide for cells this large
    with pytest.raises(ValueError, match="diameter"):
        label_cells(heat, diameter=0)
