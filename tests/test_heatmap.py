"""Tests for napari_milseg.heatmap: tiling, blending and the tiled heatmap."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_milseg import label_cells
from napari_milseg.heatmap import (
    OVERLAP,
    TILE,
    blend_weights,
    heatmap_steps,
    predict_heatmap,
    tile_spans,
)
from napari_milseg.preprocess import ImageError
from napari_milseg.progress import run
from toy_model import dark_model, disc_image


@pytest.mark.parametrize(
    ("length", "tile", "overlap"),
    [(100, 200, 10), (100, 100, 10), (101, 100, 10), (640, 64, 20), (1000, 96.5, 30.2),
     (10_000, 512, 96), (300, 50, 40), (7, 3, 1)],
)
def test_tile_spans_cover_the_image_with_overlap(length, tile, overlap):
    spans = tile_spans(length, tile, overlap)
    size = int(np.ceil(tile))
    assert spans[0][0] == 0
    assert spans[-1][1] == length
    if length <= size:
        assert spans == [(0, length)]
        return
    least = min(int(np.ceil(overlap)), size // 2)
    # as few spans as the overlap allows, all of one length, no longer than the tile
    assert len(spans) == int(np.ceil((length - least) / (size - least)))
    lengths = {stop - start for start, stop in spans}
    assert len(lengths) == 1 and lengths.pop() <= size
    for (start, stop), (next_start, _) in zip(spans, spans[1:], strict=False):
        assert start < next_start
        assert stop - next_start >= least
    covered = np.zeros(length, dtype=int)
    for start, stop in spans:
        covered[start:stop] += 1
    assert covered.min() >= 1


def test_tile_spans_examples():
    assert tile_spans(100, 200, 10) == [(0, 100)]
    assert tile_spans(100, 60, 20) == [(0, 60), (40, 100)]
    assert tile_spans(10, 4, 2) == [(0, 4), (2, 6), (4, 8), (6, 10)]


@pytest.mark.parametrize(("length", "tile", "overlap"), [(100, 60, 20), (640, 64, 20),
                                                         (1000, 96.5, 30.2), (50, 100, 10)])
def test_blend_weights_sum_to_one(length, tile, overlap):
    spans = tile_spans(length, tile, overlap)
    weights = blend_weights(length, spans)
    total = np.zeros(length)
    for (start, stop), w in zip(spans, weights, strict=True):
        assert w.shape == (stop - start,)
        assert w.dtype == np.float32
        assert (w > 0).all()
        total[start:stop] += w
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_blend_weights_ramp_down_towards_inner_edges():
    spans = tile_spans(100, 60, 20)
    first, second = blend_weights(100, spans)
    # outside the overlap each tile has the pixel alone
    assert np.all(first[:40] == 1.0)
    assert np.all(second[20:] == 1.0)
    overlap = first[40:]
    assert np.all(np.diff(overlap) < 0)


def _smooth_discs():
    image = disc_image((200, 300), [(50, 50), (100, 150), (150, 250), (100, 32)], 15)
    return ndi.gaussian_filter(image.astype(float), (3, 3, 0)).astype(np.uint8)


def test_heatmap_shape_dtype_and_range():
    image = _smooth_discs()
    heatmap = predict_heatmap(image, dark_model())
    assert heatmap.shape == (200, 300)
    assert heatmap.dtype == np.float32
    assert 0.0 <= heatmap.min() and heatmap.max() <= 1.0
    # dark disc centres score high, the bright background low
    assert heatmap[100, 150] > 0.9
    assert heatmap[5, 5] < 0.1


@pytest.mark.parametrize("tile", [64, 128])
def test_tiled_heatmap_equals_single_tile_heatmap(tile):
    image = _smooth_discs()
    model = dark_model()
    single = run(heatmap_steps(image, model, tile=TILE))
    tiled = run(heatmap_steps(image, model, tile=tile))
    difference = np.abs(tiled - single)
    # the toy network pools 4x4 blocks, whose grid shifts with the tile origin
    assert difference.max() < 0.05
    assert difference.mean() < 0.002


def test_progress_reports_every_tile():
    image = _smooth_discs()
    reports = []
    heatmap = run(heatmap_steps(image, dark_model(), tile=64), reports.append)
    tiles = len(tile_spans(200, 64, OVERLAP)) * len(tile_spans(300, 64, OVERLAP))
    assert tiles == 6 * 9
    assert [r.step for r in reports] == list(range(tiles + 1))
    assert {r.total for r in reports} == {tiles}
    assert heatmap.shape == (200, 300)


@pytest.mark.parametrize("centre", [(100, 100), (100, 91), (59, 150), (118, 118)])
def test_a_cell_crossing_tile_borders_stays_one_cell(centre):
    # with 64 px tiles the spans start at 0, 27, 54, 82, 109, 136 (rows)
    # and 0, 30, 59, 88, 118, ... (columns): every centre here sits on a border
    image = disc_image((200, 300), [centre], 24)
    model = dark_model()
    tiled = label_cells(run(heatmap_steps(image, model, tile=64)))
    single = label_cells(run(heatmap_steps(image, model)))
    assert tiled.max() == 1
    assert single.max() == 1
    # the cell has the same extent give or take its outline
    assert np.count_nonzero(tiled != single) <= 0.05 * np.count_nonzero(single)


def test_discs_are_found_with_a_diameter_rescale():
    # cells of 64 px at a network trained for 32 px: the image is shrunk by 2
    image = disc_image((256, 256), [(64, 64), (64, 192), (192, 128)], 30)
    heatmap = predict_heatmap(image, dark_model(), diameter=64)
    assert heatmap.shape == (256, 256)
    assert label_cells(heatmap).max() == 3


def test_lazy_dask_image_gives_the_numpy_heatmap():
    da = pytest.importorskip("dask.array")
    image = _smooth_discs()
    lazy = da.from_array(image, chunks=(64, 64, 3))
    model = dark_model()
    np.testing.assert_array_equal(
        run(heatmap_steps(lazy, model, tile=64)), run(heatmap_steps(image, model, tile=64))
    )


def test_image_smaller_than_a_cell_is_refused():
    with pytest.raises(ImageError, match="smaller than one expected cell"):
        predict_heatmap(np.zeros((20, 200, 3), np.uint8), dark_model())


def test_bad_diameter_is_refused_before_any_work():
    with pytest.raises(ValueError, match="diameter"):
        predict_heatmap(np.zeros((100, 100), np.uint8), dark_model(), diameter=-3)


def test_random_resnet_heatmap_is_probability_map(random_model_path):
    image = np.random.default_rng(0).integers(0, 256, (150, 170, 3), dtype=np.uint8)
    heatmap = predict_heatmap(image, random_model_path)
    assert heatmap.shape == (150, 170)
    assert heatmap.dtype == np.float32
    assert np.isfinite(heatmap).all()
    assert 0.0 <= heatmap.min() and heatmap.max() <= 1.0


def test_closer_look_adds_a_small_cell_the_network_scale_blurs():
    # two cells and a dot of 2 px radius: the toy network averages 4x4 blocks,
    # so at its scale the dot stays faint; at twice the resolution it is a core
    image = np.minimum(
        disc_image((120, 200), [(60, 50), (60, 150)], 16), disc_image((120, 200), [(60, 100)], 2)
    )
    model = dark_model()
    plain = predict_heatmap(image, model, closer_look=False)
    closer = predict_heatmap(image, model)  # on by default
    assert label_cells(plain).max() == 2
    assert label_cells(closer).max() == 3
    changed = np.argwhere(closer != plain)
    assert len(changed) and np.abs(changed - [60, 100]).max() <= 6  # only at the dot
    assert closer[60, 100] > 0.8 > plain[60, 100]
