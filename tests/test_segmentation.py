"""Tests for napari_milseg.segmentation: the public segment API on all kinds of input."""

from __future__ import annotations

import numpy as np
import pytest

import napari_milseg
from napari_milseg import ImageError, Segmentation, SegmentParams, segment, segment_stack
from napari_milseg.progress import run
from napari_milseg.segmentation import segment_stack_steps
from toy_model import dark_model, disc_image

CENTRES = [(40, 40), (40, 120), (100, 80)]


@pytest.fixture
def discs() -> np.ndarray:
    """A 150x170 RGB uint8 image of three separate dark discs."""
    return disc_image((150, 170), CENTRES, 18)


@pytest.fixture(scope="module")
def toy():
    return dark_model()


def test_shapes_dtypes_and_count(discs, toy):
    result = segment(discs, model=toy)
    assert isinstance(result, Segmentation)
    assert result.heatmap.shape == (150, 170)
    assert result.heatmap.dtype == np.float32
    assert result.labels.shape == (150, 170)
    assert result.labels.dtype == np.int32
    assert result.count == 3
    assert isinstance(result.count, int)
    assert result.labels.max() == 3
    # one label per disc, each at its disc's centre, background 0
    assert sorted(result.labels[c] for c in CENTRES) == [1, 2, 3]
    assert result.labels[0, 0] == 0


def test_thresholds_reach_label_cells(discs, toy):
    result = segment(discs, inner=0.9, outer=0.2, model=toy)
    assert result.diameter == toy.diameter
    np.testing.assert_array_equal(
        result.labels,
        napari_milseg.label_cells(result.heatmap, inner=0.9, outer=0.2, diameter=toy.diameter),
    )
    # a lower outer threshold gives larger cells
    assert np.count_nonzero(result.labels) > np.count_nonzero(segment(discs, model=toy).labels)


def test_wide_cells_are_merged_at_the_diameter_used(discs, toy, monkeypatch):
    import napari_milseg.segmentation as segmentation

    seen = []

    def spy(heatmap, inner, outer, diameter=None, **rest):
        seen.append(diameter)
        return napari_milseg.label_cells(heatmap, inner, outer, diameter=diameter, **rest)

    monkeypatch.setattr(segmentation, "label_cells", spy)
    assert segment(discs, model=toy).diameter == toy.diameter
    assert segment(discs, model=toy, diameter=30).diameter == 30
    assert segment_stack(np.stack([discs, discs]), model=toy, diameter=30).diameter == 30
    assert seen == [toy.diameter, 30, 30, 30]


def test_closer_look_is_on_by_default_and_reaches_the_heatmap(discs, toy, closer_looks):
    assert SegmentParams().closer_look is True
    segment(discs, model=toy)
    segment(discs, model=toy, closer_look=False)
    segment_stack(np.stack([discs, discs]), model=toy, closer_look=False)
    segment_stack(np.stack([discs]), model=toy)
    assert closer_looks == [True, False, False, False, True]


def test_split_joined_is_off_by_default_and_reads_the_image(discs, toy, monkeypatch):
    import napari_milseg.joined_cells as joined_cells

    seen = []
    real = joined_cells.split_joined_cells

    def spy(labels, diameter, image, rgb=None):
        seen.append((image.shape, rgb))
        return real(labels, diameter, image, rgb)

    monkeypatch.setattr(joined_cells, "split_joined_cells", spy)
    assert SegmentParams().split_joined is False
    plain = segment(discs, model=toy)
    assert seen == []
    joined = segment(discs, model=toy, split_joined=True, rgb=True)
    assert seen == [(discs.shape, True)]
    # three separate round discs: nothing to split
    np.testing.assert_array_equal(joined.labels, plain.labels)
    segment_stack(np.stack([discs, discs]), model=toy, split_joined=True)
    assert len(seen) == 3
    with pytest.raises(ValueError, match="split_joined must be True or False"):
        SegmentParams(split_joined=1)


def test_closer_look_must_be_true_or_false():
    with pytest.raises(ValueError, match="closer_look"):
        SegmentParams(closer_look="yes")


def test_input_not_modified(discs, toy):
    before = discs.copy()
    segment(discs, model=toy)
    np.testing.assert_array_equal(discs, before)


def test_grayscale_gives_the_rgb_result(discs, toy):
    np.testing.assert_array_equal(
        segment(discs[..., 0], model=toy).labels, segment(discs, model=toy).labels
    )


def test_rgba_alpha_is_ignored(discs, toy):
    alpha = np.zeros((*discs.shape[:2], 1), np.uint8)
    rgba = np.concatenate([discs, alpha], axis=-1)
    np.testing.assert_array_equal(segment(rgba, model=toy).labels, segment(discs, model=toy).labels)


def test_16_bit_image(discs, toy):
    result = segment(discs.astype(np.uint16) * 257 + 100, model=toy)
    assert result.count == 3
    assert sorted(result.labels[c] for c in CENTRES) == [1, 2, 3]


@pytest.mark.parametrize(("scale", "offset"), [(1 / 255, 0.0), (1000.0, -5e4), (1e-6, 3.0)])
def test_float_image_of_odd_range(discs, toy, scale, offset):
    result = segment(discs.astype(np.float64) * scale + offset, model=toy)
    assert result.count == 3


def test_nan_and_inf_pixels_are_replaced_with_a_warning(discs, toy):
    image = discs.astype(np.float32)
    image[5:8, 5:8] = np.nan
    image[140, 160] = np.inf
    with pytest.warns(UserWarning, match="10 NaN or infinite"):
        result = segment(image, model=toy)
    assert result.count == 3
    assert np.isfinite(result.heatmap).all()


def test_constant_image_has_no_cells(toy):
    result = segment(np.full((100, 120), 7.5, np.float32), model=toy)
    assert result.count == 0
    np.testing.assert_allclose(result.heatmap, 0.5, atol=1e-6)
    assert not result.labels.any()


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros(300, np.uint8), "2D image"),
        (np.zeros((2, 100, 100, 3), np.uint8), "segment_stack"),
        (np.zeros((2, 2, 100, 100), np.uint8), "segment_stack"),
        (np.zeros((2, 2, 2, 100, 100, 3), np.uint8), "segment_stack"),
        (np.zeros((0, 100, 3), np.uint8), "empty"),
        (np.zeros((100, 0), np.uint8), "empty"),
        (np.zeros((20, 20, 3), np.uint8), "smaller than one expected cell"),
        (np.full((100, 100), np.nan), "no finite pixel"),
    ],
)
def test_unusable_images_raise_image_error(image, match, toy):
    with pytest.raises(ImageError, match=match):
        segment(image, model=toy)


def test_bad_thresholds_are_refused_before_the_model_loads(discs):
    # an impossible model path: thresholds must be checked first
    with pytest.raises(ValueError, match="outer"):
        segment(discs, inner=0.5, outer=0.6, model="/nonexistent/model.pt")


def test_a_bad_image_is_refused_before_the_model_loads():
    with pytest.raises(ImageError, match="segment_stack"):
        segment(np.zeros((2, 100, 100, 3), np.uint8), model="/nonexistent/model.pt")


def test_bad_model_file_raises_model_error(discs, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(napari_milseg.ModelError, match="bad.pt"):
        segment(discs, model=bad)


def test_params_object_and_steps_agree(discs, toy):
    from napari_milseg.segmentation import segment_steps

    reports = []
    result = run(segment_steps(discs, SegmentParams(), toy), reports.append)
    assert reports and reports[-1].step == reports[-1].total
    np.testing.assert_array_equal(result.labels, segment(discs, model=toy).labels)


def test_stack_is_segmented_plane_by_plane(toy):
    planes = [
        disc_image((150, 170), CENTRES, 18),
        disc_image((150, 170), CENTRES[:2], 18),
        disc_image((150, 170), [], 18),
    ]
    stack = np.stack(planes)
    reports = []
    result = run(segment_stack_steps(stack, SegmentParams(), toy), reports.append)
    assert result.heatmap.shape == (3, 150, 170)
    assert result.labels.shape == (3, 150, 170)
    assert result.labels.dtype == np.int32
    assert result.count == [3, 2, 0]
    for plane, labels in zip(planes, result.labels, strict=True):
        np.testing.assert_array_equal(labels, segment(plane, model=toy).labels)
    assert [(r.step, r.total) for r in reports] == [(0, 3), (1, 3), (2, 3), (3, 3)]


def test_grayscale_and_nested_stacks(toy):
    plane = disc_image((150, 170), CENTRES, 18)[..., 0]
    stack = np.stack([np.stack([plane, plane[::-1]]), np.stack([plane[:, ::-1], plane])])
    result = segment_stack(stack, model=toy)
    assert result.labels.shape == (2, 2, 150, 170)
    assert result.count == [3, 3, 3, 3]


def test_single_plane_through_segment_stack(discs, toy):
    result = segment_stack(discs, model=toy)
    assert result.count == [3]
    np.testing.assert_array_equal(result.labels, segment(discs, model=toy).labels)


@pytest.mark.parametrize(
    ("stack", "match"),
    [(np.zeros(10), "at least a 2D image"), (np.zeros((3, 0, 10)), "empty")],
)
def test_unusable_stacks(stack, match, toy):
    with pytest.raises(ImageError, match=match):
        segment_stack(stack, model=toy)


def test_model_as_path_runs_the_resnet(random_model_path):
    image = np.random.default_rng(0).integers(0, 256, (120, 130, 3), dtype=np.uint8)
    result = segment(image, inner=0.52, outer=0.51, model=random_model_path)
    assert result.heatmap.shape == (120, 130)
    assert result.count == int(result.labels.max())
    again = segment(image, inner=0.52, outer=0.51, model=random_model_path)
    np.testing.assert_array_equal(again.heatmap, result.heatmap)


def test_fully_transparent_pixels_hold_no_cells(toy, monkeypatch):
    import napari_milseg.preprocess as preprocess

    image = disc_image((150, 170), CENTRES, 18)
    rgba = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    rgba[:, 100:] = 0  # a black, transparent margin (a stitched or rotated export)
    result = segment(rgba, model=toy)
    assert not result.labels[:, 100:].any() and not result.heatmap[:, 100:].any()
    assert result.count == 2  # the two discs left of the margin; the third lies in it
    # opaque, the black margin is taken for the frame of a field of view
    opaque = rgba.copy()
    opaque[..., 3] = 255
    assert not segment(opaque, model=toy).labels[:, 100:].any()
    # transparent, it needs no such rule; without either, this (dark-loving) toy
    # model reads it as cells
    monkeypatch.setattr(preprocess, "outside_field", lambda image, rgb=None: None)
    assert segment(rgba, model=toy).count == 2
    assert segment(opaque, model=toy).labels[:, 100:].any()
    # an alpha channel that is 0 everywhere says nothing: the image is segmented as is
    clear = np.dstack([image, np.zeros(image.shape[:2], np.uint8)])
    np.testing.assert_array_equal(
        segment(clear, model=toy).labels, segment(image, model=toy).labels
    )


def test_the_black_frame_around_a_round_field_of_view_holds_no_cells(toy, monkeypatch):
    import napari_milseg.preprocess as preprocess

    image = disc_image((150, 170), CENTRES, 18)
    # purple cells, whose brightest channel (150) the frame's soft edge does not take in
    image[image[..., 0] == 40] = (150, 30, 150)
    yy, xx = np.mgrid[:150, :170]
    outside = np.hypot(yy - 75, xx - 85) > 70  # the first disc is cut by the frame
    image[outside] = 0
    result = segment(image, model=toy)
    assert not result.labels[outside].any() and not result.heatmap[outside].any()
    assert result.count == 3
    # without it this (dark-loving) toy model reads the frame as cells
    monkeypatch.setattr(preprocess, "outside_field", lambda image, rgb=None: None)
    assert segment(image, model=toy).labels[outside].any()
