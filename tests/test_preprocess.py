"""Tests for napari_milseg.preprocess: what images are accepted and how they are scaled."""

from __future__ import annotations

import numpy as np
import pytest

from napari_milseg.preprocess import (
    EXPOSURE_RANGE,
    MAX_GAIN,
    ImageError,
    as_rgb_float,
    exposure_gain,
    intensity_range,
    plane_shape,
    to_rgb_float,
)


def test_uint8_rgb_keeps_absolute_scale():
    image = np.array([[[0, 51, 255], [255, 204, 153]]], dtype=np.uint8)  # a usual exposure
    out = as_rgb_float(image)
    assert out.dtype == np.float32
    assert out.shape == (1, 2, 3)
    assert out.flags.c_contiguous
    np.testing.assert_allclose(out, image / 255.0, rtol=0, atol=1e-7)


def test_uint8_dark_image_is_brightened_at_most_max_gain_times_not_stretched():
    image = np.full((4, 4), 10, dtype=np.uint8)
    image[0, 0] = 20
    out = as_rgb_float(image)
    np.testing.assert_allclose(out[1, 1], [MAX_GAIN * 10 / 255] * 3, atol=1e-6)
    np.testing.assert_allclose(out[0, 0], [MAX_GAIN * 20 / 255] * 3, atol=1e-6)


def test_grayscale_is_copied_to_three_channels():
    image = np.arange(190, 202, dtype=np.uint8).reshape(3, 4)  # a usual exposure
    out = as_rgb_float(image)
    assert out.shape == (3, 4, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], image / np.float32(255))


def test_single_channel_axis_is_grayscale():
    image = np.arange(12, dtype=np.uint8).reshape(3, 4, 1)
    np.testing.assert_array_equal(as_rgb_float(image), as_rgb_float(image[..., 0]))


def test_two_channels_get_a_zero_blue_channel():
    image = np.stack([np.full((2, 2), 255), np.full((2, 2), 153)], axis=-1).astype(np.uint8)
    out = as_rgb_float(image)
    np.testing.assert_allclose(out[0, 0], [1.0, 0.6, 0.0], atol=1e-7)


def test_rgba_alpha_is_dropped():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    alpha = np.zeros((5, 6, 1), dtype=np.uint8)
    np.testing.assert_array_equal(as_rgb_float(np.concatenate([rgb, alpha], -1)), as_rgb_float(rgb))


@pytest.mark.parametrize(
    ("top", "depth"), [(200, 8), (800, 10), (3200, 12), (13000, 14), (52000, 16)]
)
def test_wide_integer_images_keep_their_brightness_at_their_bit_depth(top, depth):
    # (each ramp's exposure lies in the usual range, so no gain is added)
    ramp = np.linspace(top / 4, top, 10_001).astype(np.uint16).reshape(73, 137)
    assert intensity_range(ramp) == (0.0, 2.0**depth - 1)
    out = as_rgb_float(ramp)
    assert out[36, 68, 0] == pytest.approx(ramp[36, 68] / (2**depth - 1), abs=1e-6)
    # a few hot pixels above the depth clip instead of darkening the image
    hot = ramp.copy()
    hot.flat[::5000] = 65535
    assert intensity_range(hot) == intensity_range(ramp)


@pytest.mark.parametrize("dtype, factor", [(np.uint16, 257), (np.uint16, 16), (np.int32, 257)])
def test_an_8bit_smear_saved_wider_reads_as_the_8bit_one(dtype, factor):
    image = np.random.default_rng(6).integers(30, 256, (40, 50, 3)).astype(np.uint8)
    wide = image.astype(dtype) * factor
    np.testing.assert_allclose(as_rgb_float(wide), as_rgb_float(image), atol=1 / 255)


def test_negative_or_very_wide_integers_are_stretched_between_percentiles():
    # cubed, so that the stretched image's exposure is a usual one (no gain added)
    ramp = (-2000 + 6000 * np.linspace(0, 1, 10_001) ** 3).astype(np.int16).reshape(73, 137)
    lo, hi = intensity_range(ramp)
    expected_lo, expected_hi = np.percentile(ramp.astype(np.float32), [0.1, 99.9])
    assert (lo, hi) == pytest.approx((expected_lo, expected_hi))
    out = as_rgb_float(ramp)
    assert out.min() == 0.0 and out.max() == 1.0
    wide = np.linspace(1e5, 4e6, 10_001).astype(np.uint32).reshape(73, 137)
    assert intensity_range(wide)[0] == pytest.approx(np.percentile(wide, 0.1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("offset", "scale"), [(0.0, 1e3), (-5e4, 1e3), (1e-3, 1e-6), (-1.0, 2.0), (0.0, 0.3)]
)
def test_float_off_the_0_1_scale_is_stretched_whatever_its_range(dtype, offset, scale):
    # cubed, so that the stretched image's exposure is a usual one (no gain added)
    base = np.random.default_rng(1).random((40, 50)).astype(np.float64) ** 3
    lo, hi = np.percentile(base, [0.1, 99.9])
    reference = np.clip((base - lo) / (hi - lo), 0, 1)
    out = as_rgb_float((base * scale + offset).astype(dtype))
    np.testing.assert_allclose(out[..., 0], reference, atol=2e-3)
    assert out.min() == 0.0
    assert out.max() == 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_float_picture_on_the_0_1_scale_reads_as_its_8bit_self(dtype):
    image = np.random.default_rng(7).integers(20, 256, (40, 50, 3)).astype(np.uint8)
    assert intensity_range((image / 255).astype(dtype)) == (0.0, 1.0)
    np.testing.assert_allclose(as_rgb_float((image / 255).astype(dtype)), as_rgb_float(image),
                               atol=1e-6)


def test_bool_image_maps_to_0_and_1():
    image = np.array([[True, False]])
    np.testing.assert_array_equal(as_rgb_float(image)[0, :, 0], [1.0, 0.0])


@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.float64, np.int32])
def test_constant_image_is_mid_grey(dtype):
    out = as_rgb_float(np.full((8, 9), 1234, dtype=dtype))
    assert np.all(out == 0.5)


def test_nan_and_inf_are_replaced_with_a_warning():
    image = np.random.default_rng(2).random((30, 30)).astype(np.float32)
    image[3, 4] = np.nan
    image[5, 6] = np.inf
    image[7, 8] = -np.inf
    with pytest.warns(UserWarning, match="3 NaN or infinite pixels"):
        out = as_rgb_float(image)
    assert np.isfinite(out).all()
    assert out[3, 4, 0] == pytest.approx(0.5, abs=0.02)


def test_all_nan_image_is_refused():
    with pytest.raises(ImageError, match="no finite pixel"):
        as_rgb_float(np.full((10, 10), np.nan))


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros((0, 10, 3), np.uint8), "empty"),
        (np.zeros((10, 0), np.float32), "empty"),
        (np.zeros(10, np.uint8), "2D image"),
        (np.zeros((2, 10, 10, 3), np.uint8), "segment_stack"),
        (np.zeros((1, 2, 10, 10), np.uint8), "segment_stack"),
        (np.zeros((10, 10, 5), np.uint8), r"shape \(10, 10, 5\)"),
        (np.full((4, 4), "a"), "numbers"),
        (np.zeros((4, 4), complex), "numbers"),
    ],
)
def test_unusable_arrays_are_refused_with_a_reason(image, match):
    with pytest.raises(ImageError, match=match):
        as_rgb_float(image)


def test_image_error_is_a_value_error():
    assert issubclass(ImageError, ValueError)


@pytest.mark.parametrize(
    ("shape", "rgb", "expected"),
    [
        ((10, 20), None, (10, 20)),
        ((10, 20, 3), None, (10, 20)),
        ((10, 20, 4), True, (10, 20)),
        ((10, 20, 1), None, (10, 20)),
    ],
)
def test_plane_shape(shape, rgb, expected):
    assert plane_shape(np.zeros(shape, np.uint8), rgb) == expected


def test_plane_shape_without_channels_refuses_3d():
    with pytest.raises(ImageError, match="expected one 2D image"):
        plane_shape(np.zeros((10, 20, 3)), rgb=False)


def test_input_is_not_modified():
    image = np.random.default_rng(3).random((20, 20, 4)) * 1000
    image[0, 0, 0] = np.nan
    before = image.copy()
    with pytest.warns(UserWarning):
        as_rgb_float(image)
    np.testing.assert_array_equal(image, before)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_tiles_scaled_with_the_whole_image_range_match_the_whole(dtype):
    rng = np.random.default_rng(4)
    image = (rng.random((64, 80, 3)) * (200 if dtype == np.uint8 else 3000)).astype(dtype)
    whole = as_rgb_float(image)
    value_range = intensity_range(image)
    tile = to_rgb_float(image[10:40, 20:70], value_range)
    np.testing.assert_array_equal(tile, whole[10:40, 20:70])


def test_intensity_range_reads_lazy_arrays():
    da = pytest.importorskip("dask.array")
    image = np.random.default_rng(5).integers(0, 60000, (300, 200), dtype=np.uint16)
    lazy = da.from_array(image, chunks=(64, 64))
    assert intensity_range(lazy) == intensity_range(image)
    assert intensity_range(da.from_array((image // 300).astype(np.uint8))) is None
    dim = (image // 600).astype(np.uint8)  # a dim 8-bit image gets a range, lazy or not
    assert intensity_range(da.from_array(dim)) == intensity_range(dim) != None  # noqa: E711


@pytest.mark.parametrize("dtype, top", [(np.uint8, 255), (np.uint16, 4095), (np.float32, 1.0)])
def test_a_dim_or_bright_image_is_brought_to_the_nearer_end_of_the_usual_exposure(dtype, top):
    rng = np.random.default_rng(8)
    # a smear-like picture: background at 0.8 of the scale (usual), cells darker
    picture = np.where(rng.random((60, 70, 1)) < 0.6, 0.8, 0.5) * np.ones(3)
    picture = picture * (1 + 0.02 * rng.standard_normal((60, 70, 3)))
    dim, bright = EXPOSURE_RANGE
    # (a float image this dim, below FLOAT_BRIGHT, is stretched instead)
    exposures = (1.0, 0.7, 1.15) + ((0.4, 0.25) if dtype != np.float32 else ())
    for exposure in exposures:
        image = (np.clip(picture * exposure, 0, 1) * top).astype(dtype)
        if dtype == np.uint16:
            image[0] = 4095  # so that it reads as 12-bit whatever its exposure
        level = np.percentile(image.mean(axis=-1) / top, 95)
        expected = level if exposure == 1.0 else dim if exposure < 1 else bright
        assert (exposure == 1.0) == (dim <= level <= bright)
        out = as_rgb_float(image)
        background = np.percentile(out.mean(axis=-1), 95)
        assert background == pytest.approx(expected, abs=0.005)
        # the same picture, only brighter or darker: cells keep their contrast
        ratio = out.mean(axis=-1)[picture[..., 0] < 0.6].mean() / background
        assert ratio == pytest.approx(0.5 / 0.8, abs=0.02)


def test_exposure_gain_is_one_for_usual_and_constant_images_and_at_most_max_gain():
    usual = np.full((30, 30, 3), 200, np.uint8)
    assert exposure_gain(usual, (0.0, 255.0)) == 1.0
    assert intensity_range(usual) is None  # 8-bit of a usual exposure: divided by 255
    assert exposure_gain(np.full((30, 30), 7.0), (7.0, 7.0)) == 1.0
    black = np.zeros((30, 30, 3), np.uint8)
    assert exposure_gain(black, (0.0, 255.0)) == MAX_GAIN
    assert as_rgb_float(black).max() == 0.0  # a black image stays black
    # alpha is left out of the grey level; NaN pixels are left out
    rgba = np.dstack([np.full((30, 30, 3), 100, np.uint8), np.full((30, 30), 255, np.uint8)])
    assert exposure_gain(rgba, (0.0, 255.0), rgb=True) == exposure_gain(rgba[..., :3], (0, 255))
    holes = np.full((30, 30), 0.4, np.float32)
    holes[::2] = np.nan
    assert exposure_gain(holes, (0.0, 1.0)) == pytest.approx(EXPOSURE_RANGE[0] / 0.4)


def framed(image: np.ndarray, radius: float, edge: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``image`` seen through a round field of view in a black frame, and the frame.

    ``edge`` is the width in pixels of the field's soft edge (brightness falling to 0).
    """
    height, width = image.shape[:2]
    yy, xx = np.mgrid[:height, :width]
    distance = np.hypot(yy - height / 2, xx - width / 2)
    light = np.clip((radius - distance) / edge, 0, 1) if edge else (distance <= radius) * 1.0
    light = light[..., None] if image.ndim == 3 else light
    return np.round(image * light).astype(image.dtype), distance


def smear_like(shape=(200, 240)) -> np.ndarray:
    """Pinkish cells, one with a dark purple nucleus, on a bright background (uint8 RGB)."""
    rng = np.random.default_rng(9)
    image = np.empty((*shape, 3), np.uint8)
    image[:] = (215, 205, 200)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for _ in range(25):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        image[np.hypot(yy - cy, xx - cx) < 14] = (200, 140, 140)
    image[np.hypot(yy - shape[0] / 2, xx - shape[1] / 2) < 12] = (120, 90, 170)
    return image


def test_the_black_frame_of_a_round_field_of_view_is_found():
    from napari_milseg.preprocess import outside_field

    image = smear_like()
    assert outside_field(image) is None
    hard, distance = framed(image, 90)
    np.testing.assert_array_equal(outside_field(hard), distance > 90)
    # a soft edge: the frame takes in the dim pixels joined to it, and no more
    soft, distance = framed(image, 90, edge=12)
    frame = outside_field(soft)
    assert frame[distance >= 90].all()
    assert not frame[distance < 78].any()
    dim = (soft <= 0.5 * 255).all(axis=-1)
    np.testing.assert_array_equal(frame, dim & (distance > 78))
    # grayscale and lazy images alike
    np.testing.assert_array_equal(outside_field(hard[..., 0]), outside_field(hard))
    da = pytest.importorskip("dask.array")
    np.testing.assert_array_equal(outside_field(da.from_array(hard, chunks=(64, 64, 3))),
                                  outside_field(hard))


def test_dark_spots_inside_the_field_and_small_dark_corners_are_no_frame():
    from napari_milseg.preprocess import OUTSIDE_SHARE, outside_field

    image = smear_like()
    spot = image.copy()
    spot[80:120, 100:140] = 0  # a black speck inside the field, a third of the image
    assert outside_field(spot) is None
    corner = image.copy()
    side = int(np.sqrt(0.5 * OUTSIDE_SHARE * corner.shape[0] * corner.shape[1]))
    corner[:side, :side] = 0  # half the least share
    assert outside_field(corner) is None
    corner[: 2 * side, : 2 * side] = 0  # four times as much: a frame
    assert outside_field(corner).sum() == 4 * side * side
    # a black image is all frame; a dim one is brightened first (exposure), then no frame
    assert outside_field(np.zeros((50, 60, 3), np.uint8)).all()
    assert outside_field((image * 0.3).astype(np.uint8)) is None
