"""Tests for napari_milseg.cells.label_cells on tiny hand-made heatmaps."""

from __future__ import annotations

import numpy as np
import pytest

from napari_milseg import label_cells


def test_docstring_example_two_touching_blobs():
    h = np.array([[0.0, 0.6, 0.9, 0.6, 0.9, 0.6, 0.0]])
    np.testing.assert_array_equal(label_cells(h, 0.8, 0.5), [[0, 1, 1, 1, 2, 2, 0]])


def test_touching_cells_are_cut_at_the_valley():
    h = np.array(
        [
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 0.9, 0.7, 0.6, 0.65, 0.9, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        ]
    )
    expected = [
        [0, 0, 0, 0, 0, 0, 0],
        [0, 1, 1, 1, 2, 2, 0],
        [0, 0, 0, 0, 0, 0, 0],
    ]
    np.testing.assert_array_equal(label_cells(h), expected)


def test_cores_and_regions_are_four_connected():
    # diagonal cores are two cells; the 0.6 pixel touches a core only
    # diagonally, so it is a region of its own: a third, coreless cell
    h = np.array([[0.9, 0.0, 0.0], [0.0, 0.9, 0.0], [0.0, 0.0, 0.6]])
    np.testing.assert_array_equal(label_cells(h), [[1, 0, 0], [0, 2, 0], [0, 0, 3]])
    np.testing.assert_array_equal(
        label_cells(h, coreless=False), [[1, 0, 0], [0, 2, 0], [0, 0, 0]]
    )


def test_region_above_outer_without_core_is_one_cell_unless_asked_not_to():
    h = np.array([[0.0, 0.6, 0.7, 0.0, 0.9, 0.6], [0.0, 0.6, 0.6, 0.0, 0.6, 0.0]])
    # the coreless region is numbered in raster order with the cores
    np.testing.assert_array_equal(label_cells(h), [[0, 1, 1, 0, 2, 2], [0, 1, 1, 0, 2, 0]])
    np.testing.assert_array_equal(
        label_cells(h, coreless=False), [[0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 1, 0]]
    )


def test_coreless_region_is_never_split_or_joined_to_a_cell():
    # two faint bumps joined above outer, and no core anywhere: one cell
    h = np.array([[0.0, 0.75, 0.55, 0.75, 0.0, 0.45, 0.9, 0.0]])
    np.testing.assert_array_equal(label_cells(h), [[0, 1, 1, 1, 0, 0, 2, 0]])


def test_thresholds_are_strict():
    # exactly inner is not a core, exactly outer is not extent
    h = np.array([[0.8, 0.0, 0.9, 0.5]])
    np.testing.assert_array_equal(label_cells(h, 0.8, 0.5, coreless=False), [[0, 0, 1, 0]])
    # the 0.8 pixel is above outer, though: a coreless cell
    np.testing.assert_array_equal(label_cells(h, 0.8, 0.5), [[1, 0, 2, 0]])


def test_lower_inner_finds_more_cores_and_outer_sets_extent():
    h = np.array([[0.0, 0.75, 0.0, 0.85, 0.55, 0.45]])
    np.testing.assert_array_equal(label_cells(h, 0.8, 0.5, False), [[0, 0, 0, 1, 1, 0]])
    np.testing.assert_array_equal(label_cells(h, 0.7, 0.5, False), [[0, 1, 0, 2, 2, 0]])
    np.testing.assert_array_equal(label_cells(h, 0.8, 0.4, False), [[0, 0, 0, 1, 1, 1]])
    # with coreless regions, lower outer finds more cells; inner only splits
    np.testing.assert_array_equal(label_cells(h, 0.8, 0.5), [[0, 1, 0, 2, 2, 0]])
    np.testing.assert_array_equal(label_cells(h, 0.8, 0.79), [[0, 0, 0, 1, 0, 0]])


def test_raising_inner_merges_cells_but_does_not_lose_them():
    h = np.array([[0.0, 0.9, 0.7, 0.85, 0.0]])
    np.testing.assert_array_equal(label_cells(h, 0.8, 0.5), [[0, 1, 1, 2, 0]])
    np.testing.assert_array_equal(label_cells(h, 0.95, 0.5), [[0, 1, 1, 1, 0]])
    np.testing.assert_array_equal(label_cells(h, 0.95, 0.5, coreless=False), [[0] * 5])


def test_numbering_is_raster_order_of_cores():
    h = np.zeros((5, 5))
    h[4, 0] = 0.9
    h[0, 4] = 0.9
    h[2, 2] = 0.9
    labels = label_cells(h)
    assert (labels[0, 4], labels[2, 2], labels[4, 0]) == (1, 2, 3)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_dtypes_give_the_same_labels(dtype):
    h = np.array([[0.0, 0.6, 0.9, 0.6, 0.9, 0.6, 0.0]], dtype=dtype)
    labels = label_cells(h)
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels, [[0, 1, 1, 1, 2, 2, 0]])


def test_boolean_map_gives_connected_components():
    h = np.array([[True, True, False, True], [False, False, False, True]])
    np.testing.assert_array_equal(label_cells(h), [[1, 1, 0, 2], [0, 0, 0, 2]])


def test_nothing_above_outer_gives_all_background_int32():
    for labels in (label_cells(np.full((3, 4), 0.4)),
                   label_cells(np.full((3, 4), 0.7), coreless=False)):
        assert labels.dtype == np.int32
        assert labels.shape == (3, 4)
        assert not labels.any()
    np.testing.assert_array_equal(label_cells(np.full((3, 4), 0.7)), np.ones((3, 4)))


def test_input_not_modified():
    h = np.random.default_rng(0).random((20, 30)).astype(np.float32)
    before = h.copy()
    label_cells(h, 0.9, 0.3)
    np.testing.assert_array_equal(h, before)


@pytest.mark.parametrize(
    ("inner", "outer", "name"),
    [
        (1.2, 0.5, "inner"),
        (0.0, 0.5, "inner"),
        (float("nan"), 0.5, "inner"),
        (0.8, -0.1, "outer"),
        (0.8, 0.8, "outer"),
        (0.5, 0.8, "outer"),
    ],
)
def test_bad_thresholds_raise_naming_the_argument(inner, outer, name):
    with pytest.raises(ValueError, match=name):
        label_cells(np.zeros((3, 3)), inner, outer)


@pytest.mark.parametrize(
    ("heatmap", "match"),
    [
        (np.zeros(5), r"heatmap must be 2D .*shape \(5,\)"),
        (np.zeros((2, 3, 4)), r"heatmap must be 2D .*shape \(2, 3, 4\)"),
        (np.zeros((0, 4)), "heatmap is empty"),
        (np.array([["a", "b"]]), "heatmap must hold numbers"),
        (np.full((4, 4), 200, np.uint8), "between 0 and 1, got values from 200 .*dividing by 255"),
        (np.array([[0.2, -0.5]]), "between 0 and 1, got values from -0.5 to 0.2"),
        (np.array([[0.2, 1.5]]), "between 0 and 1"),
    ],
)
def test_bad_heatmaps_raise_naming_the_argument(heatmap, match):
    with pytest.raises(ValueError, match=match):
        label_cells(heatmap)


def test_large_maps_are_flooded_region_by_region_with_the_same_result():
    from scipy import ndimage as ndi
    from skimage.segmentation import watershed

    from napari_milseg.cells import _CONNECTIVITY, _label_by_region

    rng = np.random.default_rng(0)
    # a cell-like map: smoothed noise gives touching blobs, saddles and lone regions
    heat = ndi.gaussian_filter(rng.random((300, 260)), 4)
    heat = (heat - heat.min()) / (heat.max() - heat.min())
    markers, count = ndi.label(heat > 0.6, structure=_CONNECTIVITY)
    mask = heat > 0.45
    assert count > 20 and ndi.label(mask)[1] > 5
    whole = watershed(-heat.astype(np.float32), markers, mask=mask)
    for tile in (37, 100, 1000):  # regions cross many tile borders, or none
        np.testing.assert_array_equal(_label_by_region(heat, markers, mask, tile), whole)


@pytest.mark.parametrize("shared_crops", [0, 1000])
def test_cores_and_coreless_regions_kept_out_of_the_flood_give_the_plain_watershed(
    shared_crops, monkeypatch
):
    # label_cells leaves marker pixels that cannot spread out of the flood
    # (see cells._flood), gives a region with one core to that core and
    # floods the regions where cores meet in their own boxes, or together
    # above SHARED_CROPS of them (cells._flood_shared); the labels must be
    # those of skimage's watershed
    from scipy import ndimage as ndi
    from skimage.segmentation import watershed

    from napari_milseg import cells
    from napari_milseg.cells import _CONNECTIVITY

    monkeypatch.setattr(cells, "SHARED_CROPS", shared_crops)
    flooded, calls = [], []
    original = cells._flood
    monkeypatch.setattr(cells, "_flood", lambda *a: flooded.append(a[0].shape) or original(*a))

    rng = np.random.default_rng(1)
    heat = ndi.gaussian_filter(rng.random((240, 320)), 5)
    heat = (heat - heat.min()) / (heat.max() - heat.min())
    seen_coreless = False
    for inner, outer in ((0.8, 0.5), (0.6, 0.4), (0.7, 0.3), (0.7, 0.55)):
        mask = heat > outer
        regions, count = ndi.label(mask, structure=_CONNECTIVITY)
        cores = heat > inner
        has_core = np.zeros(count + 1, dtype=bool)
        has_core[regions[cores]] = True
        coreless = mask & ~has_core[regions]
        markers, cells = ndi.label(cores | coreless, structure=_CONNECTIVITY)
        assert cells > 10
        seen_coreless |= bool(coreless.any())
        expected = watershed(-heat.astype(np.float32), markers, mask=mask)
        np.testing.assert_array_equal(label_cells(heat, inner, outer), expected)
        calls.append(len(flooded))
        flooded.clear()
    assert seen_coreless
    if shared_crops == 0:
        assert calls == [1, 1, 1, 1]  # one flood of the regions where cores meet
    else:
        assert calls == [1, 1, 1, 9]  # one flood for each region where cores meet


def test_a_region_across_the_whole_map_is_flooded_tile_by_tile_with_the_same_result(
    monkeypatch,
):
    from scipy import ndimage as ndi
    from skimage.segmentation import watershed

    from napari_milseg import cells

    rng = np.random.default_rng(2)
    # blobs about 40 px across whose mask (above 0.3) joins into one region
    heat = ndi.gaussian_filter(rng.random((700, 650)), 6)
    heat = (heat - heat.min()) / (heat.max() - heat.min())
    markers, count = ndi.label(heat > 0.6, structure=cells._CONNECTIVITY)
    mask = heat > 0.3
    regions, _ = ndi.label(mask, structure=cells._CONNECTIVITY)
    spans = [max(b[0].stop - b[0].start, b[1].stop - b[1].start) for b in ndi.find_objects(regions)]
    assert count > 100 and max(spans) > 600
    whole = watershed(-heat.astype(np.float32), markers, mask=mask)
    tiled = []
    original = cells._flood_in_tiles
    monkeypatch.setattr(cells, "_flood_in_tiles", lambda *a: tiled.append(a) or original(*a))
    # squares of 200 px flooded in crops of 456 px: none holds the whole region
    labels = cells._label_by_region(heat, markers, mask, 100, regions)
    assert tiled
    np.testing.assert_array_equal(labels, whole)


def test_label_cells_takes_the_regionwise_path_above_the_size_limit(monkeypatch):
    import napari_milseg.cells as cells

    h = np.array([[0.0, 0.6, 0.9, 0.6, 0.9, 0.6, 0.0], [0.0] * 7, [0.9, 0.6, 0.0, 0, 0, 0.6, 0.0]])
    expected = cells.label_cells(h, 0.8, 0.5)
    assert expected.max() == 4  # three cores and a coreless region
    called = []
    original = cells._label_by_region
    monkeypatch.setattr(cells, "WHOLE_IMAGE_PIXELS", 4)
    monkeypatch.setattr(cells, "REGION_TILE", 2)
    monkeypatch.setattr(
        cells, "_label_by_region", lambda *a: called.append(a) or original(*a)
    )
    np.testing.assert_array_equal(cells.label_cells(h, 0.8, 0.5), expected)
    assert called
