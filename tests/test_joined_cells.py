"""Tests for napari_milseg.joined_cells: two cells for two red cells under one core."""

from __future__ import annotations

import numpy as np
import pytest

from napari_milseg import joined_cells, label_cells
from napari_milseg.joined_cells import MAX_COLOUR, split_joined_cells
from smears import JOINED_DIAMETER, RED, disc, painted, pair, with_neighbours

D = JOINED_DIAMETER


def test_two_red_cells_pressed_together_become_two_cells():
    labels = with_neighbours(pair())
    out = split_joined_cells(labels, D, painted(labels, {}))
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out > 0, labels > 0)  # nothing grows or shrinks
    row = labels.shape[0] // 2
    left, right = out[row, 45 - int(0.4 * D)], out[row, 45 + int(0.4 * D)]
    assert left == 1 and right == labels.max() + 1  # the new piece takes the next number
    assert set(np.unique(out[labels == 1])) == {1, right}
    for cell in (2, 3, 4):  # lone cells untouched
        np.testing.assert_array_equal(out == cell, labels == cell)


def test_one_round_or_oval_cell_stays_whole():
    shape = (60, 90)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    oval = ((yy - 30) / (0.45 * D)) ** 2 + ((xx - 45) / (0.75 * D)) ** 2 <= 1
    for cell in (disc(shape, (30, 45), 0.6 * D), oval):
        labels = with_neighbours(cell.astype(np.int32))
        np.testing.assert_array_equal(split_joined_cells(labels, D, painted(labels, {})), labels)


def test_a_pair_of_another_colour_is_left_whole():
    # a white cell's nucleus in two lobes: the shape of a pair, far from the red cells' colour
    labels = with_neighbours(pair())
    image = painted(labels, {1: (0.45, 0.35, 0.75)})
    np.testing.assert_array_equal(split_joined_cells(labels, D, image), labels)
    # the same shape in the red cells' colour is split (the colour decides)
    assert split_joined_cells(labels, D, painted(labels, {})).max() == labels.max() + 1


def test_colour_threshold_is_on_the_zero_to_one_scale():
    labels = with_neighbours(pair())
    near = tuple(c - 0.5 * MAX_COLOUR / np.sqrt(3) for c in RED)
    far = tuple(c - 2 * MAX_COLOUR / np.sqrt(3) for c in RED)
    assert split_joined_cells(labels, D, painted(labels, {1: near})).max() == 5
    assert split_joined_cells(labels, D, painted(labels, {1: far})).max() == 4
    # a 16-bit copy of the picture gives the same cells as the 8-bit one
    wide = painted(labels, {1: near}).astype(np.uint16) * 257
    assert split_joined_cells(labels, D, wide).max() == 5


def test_a_cell_too_small_or_too_deep_is_left_whole(monkeypatch):
    small = with_neighbours(pair(gap=0.5 * D, radius=0.3 * D))  # under one cell area
    np.testing.assert_array_equal(split_joined_cells(small, D, painted(small, {})), small)
    deep = with_neighbours(pair(shape=(90, 120), gap=1.2 * D, radius=1.3 * D))  # a white cell
    np.testing.assert_array_equal(split_joined_cells(deep, D, painted(deep, {})), deep)
    # each is left whole for its own reason
    monkeypatch.setattr(joined_cells, "MIN_AREA", 0.1)
    assert split_joined_cells(small, D, painted(small, {})).max() == 5
    monkeypatch.setattr(joined_cells, "MAX_DEPTH", 5.0)
    assert split_joined_cells(deep, D, painted(deep, {})).max() == 5


def test_a_small_bump_on_a_cell_is_not_cut_off(monkeypatch):
    # a round cell with a small bump: the bump is a maximum, but too small a piece
    shape = (60, 90)
    cell = disc(shape, (30, 40), 0.55 * D) | disc(shape, (30, 40 + 0.7 * D), 0.25 * D)
    labels = with_neighbours(cell.astype(np.int32))
    image = painted(labels, {})
    np.testing.assert_array_equal(split_joined_cells(labels, D, image), labels)
    monkeypatch.setattr(joined_cells, "MIN_PIECE", 0.0)  # the piece size is what keeps it
    assert split_joined_cells(labels, D, image).max() == 5


def test_what_lies_under_transparent_pixels_does_not_matter():
    # 12-bit RGBA in uint16; the transparent strip holds the largest uint16 values
    labels = with_neighbours(pair())
    far = tuple(c - 2 * MAX_COLOUR / np.sqrt(3) for c in RED)  # too far to be a red cell
    rgb = painted(labels, {1: far}).astype(np.uint16) * 16
    alpha = np.full(labels.shape, 4095, np.uint16)
    rgba = np.dstack([rgb, alpha])
    rgba[:, -6:] = (65535, 65535, 65535, 0)
    # read on the full 16-bit scale, every colour would look close to every other
    np.testing.assert_array_equal(split_joined_cells(labels, D, rgba, rgb=True), labels)


def test_grayscale_and_lazy_images_work():
    labels = with_neighbours(pair())
    grey = painted(labels, {})[..., 1]
    assert split_joined_cells(labels, D, grey).max() == 5
    dask = pytest.importorskip("dask.array")
    lazy = dask.from_array(painted(labels, {}), chunks=(32, 32, 3))
    assert split_joined_cells(labels, D, lazy).max() == 5


def test_label_cells_splits_only_with_diameter_and_image():
    labels = with_neighbours(pair())
    heatmap = np.where(labels > 0, 0.9, 0.0).astype(np.float32)  # one core over the pair
    image = painted(labels, {})
    assert label_cells(heatmap).max() == 4
    assert label_cells(heatmap, diameter=D).max() == 4
    assert label_cells(heatmap, image=image).max() == 4
    assert label_cells(heatmap, diameter=D, image=image).max() == 5


def test_label_cells_refuses_an_image_of_another_size_or_not_of_numbers():
    heatmap = np.zeros((40, 50), np.float32)
    with pytest.raises(ValueError, match=r"heatmap's height and width \(40, 50\)"):
        label_cells(heatmap, diameter=D, image=np.zeros((50, 40, 3), np.uint8))
    # refused even where no cell is large enough to need the image
    with pytest.raises(ValueError, match="pixels must be numbers, got .*dtype <U1"):
        label_cells(heatmap, diameter=D, image=np.full((40, 50, 3), "a"))


def test_label_cells_takes_an_image_as_nested_lists():
    labels = with_neighbours(pair())
    heatmap = np.where(labels > 0, 0.9, 0.0).astype(np.float32)
    image = painted(labels, {})
    assert label_cells(heatmap, diameter=D, image=image.tolist()).max() == 5
