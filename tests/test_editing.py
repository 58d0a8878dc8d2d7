"""Tests for napari_milseg.editing on tiny hand-made label images."""

from __future__ import annotations

import numpy as np
import pytest

from napari_milseg.editing import cells_at, delete_cells, merge_cells, split_cells

DUMBBELL = np.array(
    [
        [1, 1, 0, 0, 1, 1],
        [1, 1, 1, 1, 1, 1],
        [1, 1, 0, 0, 1, 1],
    ]
)


def test_cells_at_rounds_and_ignores_background_and_outside():
    labels = np.array([[0, 3, 3, 5]])
    assert cells_at(labels, [(0, 1), (0, 2.4), (0, 0), (0, 9), (-1, 3)]).tolist() == [3]
    assert cells_at(labels, [(0, 3.2), (0, 0.6)]).tolist() == [3, 5]
    assert cells_at(labels, np.empty((0, 2))).tolist() == []


def test_split_cuts_a_dumbbell_at_its_neck():
    expected = [
        [2, 2, 0, 0, 3, 3],
        [2, 2, 2, 3, 3, 3],
        [2, 2, 0, 0, 3, 3],
    ]
    np.testing.assert_array_equal(split_cells(DUMBBELL, [(1, 0), (1, 5)]), expected)


def test_split_follows_the_heatmap_valley_when_given():
    labels = np.ones((1, 7), dtype=np.int32)
    heatmap = np.array([[0.9, 0.8, 0.3, 0.7, 0.8, 0.9, 0.9]])
    seeds = [(0, 0), (0, 6)]
    np.testing.assert_array_equal(split_cells(labels, seeds, heatmap), [[2, 2, 2, 3, 3, 3, 3]])
    # without it the cut sits in the middle of the (flat) distance map
    np.testing.assert_array_equal(split_cells(labels, seeds), [[2, 2, 2, 2, 3, 3, 3]])


def test_split_numbers_pieces_above_the_maximum_in_seed_order_and_leaves_others():
    labels = np.array([[1, 1, 1, 1, 0, 7]])
    np.testing.assert_array_equal(
        split_cells(labels, [(0, 3), (0, 0), (0, 5)]), [[9, 9, 8, 8, 0, 7]]
    )


def test_split_several_cells_at_once_and_ignores_lone_and_repeated_seeds():
    labels = np.array([[1, 1, 1, 0, 2, 2, 2, 0, 4, 4]])
    seeds = [(0, 0), (0, 2), (0, 4), (0, 6), (0, 8), (0, 8), (0, 3)]
    np.testing.assert_array_equal(
        split_cells(labels, seeds), [[5, 5, 6, 0, 7, 7, 8, 0, 4, 4]]
    )


def test_unreached_fragment_keeps_its_label():
    labels = np.array([[1, 1, 1, 0, 1]])
    np.testing.assert_array_equal(split_cells(labels, [(0, 0), (0, 2)]), [[2, 2, 3, 0, 1]])


@pytest.mark.parametrize(
    "seeds",
    [[(0, 0)], [(0, 0), (0, 0)], [(0, 0), (0, 3)], [(0, 3), (0, 4)], [(0, 0), (0, 9)]],
)
def test_split_needs_two_seeds_in_one_cell(seeds):
    labels = np.array([[1, 1, 1, 0, 2, 2]])
    with pytest.raises(ValueError, match="at least two points"):
        split_cells(labels, seeds)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64])
def test_input_not_modified_and_dtype_widened_only_as_needed(dtype):
    labels = DUMBBELL.astype(dtype)
    before = labels.copy()
    two = np.array([[1, 0, 2]], dtype=dtype)
    outputs = [
        split_cells(labels, [(1, 0), (1, 5)]),
        merge_cells(two, [1, 2]),
        delete_cells(labels, [1]),
    ]
    for out in outputs:
        assert out.dtype == np.result_type(dtype, np.int32)
    np.testing.assert_array_equal(labels, before)
    np.testing.assert_array_equal(two, [[1, 0, 2]])


def test_split_checks_its_inputs():
    with pytest.raises(ValueError, match="2D"):
        split_cells(np.ones((2, 2, 2), int), [(0, 0), (1, 1)])
    with pytest.raises(ValueError, match="integers"):
        split_cells(np.ones((2, 2)), [(0, 0), (1, 1)])
    with pytest.raises(ValueError, match="heatmap shape"):
        split_cells(np.ones((2, 2), int), [(0, 0), (1, 1)], heatmap=np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        split_cells(np.ones((2, 2), int), [(0, 0, 0)])


def test_merge_keeps_the_smallest_label():
    labels = np.array([[1, 2, 0, 3], [4, 4, 0, 3]])
    np.testing.assert_array_equal(merge_cells(labels, [3, 4]), [[1, 2, 0, 3], [3, 3, 0, 3]])
    np.testing.assert_array_equal(merge_cells(labels, [0, 2, 1, 9]), [[1, 1, 0, 3], [4, 4, 0, 3]])


def test_merge_needs_two_cells():
    labels = np.array([[1, 2, 0]])
    with pytest.raises(ValueError, match="at least two cells"):
        merge_cells(labels, [1, 0, 5])
    with pytest.raises(ValueError, match="at least two cells"):
        merge_cells(labels, iter([2]))


def test_delete_makes_background_and_keeps_other_numbers():
    labels = np.array([[1, 2, 0, 3]], dtype=np.uint16)
    out = delete_cells(labels, [2, 3, 7])
    np.testing.assert_array_equal(out, [[1, 0, 0, 0]])
    assert out.dtype == np.int32
    with pytest.raises(ValueError, match="none of the labels"):
        delete_cells(labels, [0, 7])
