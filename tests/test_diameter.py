import numpy as np
import pytest
from PIL import Image

import napari_milseg
from napari_milseg.diameter import (
    ESTIMATE_SIDE,
    estimate_diameter_steps,
    evenly_spaced,
    plane_indices,
)
from napari_milseg.preprocess import ImageError
from napari_milseg.progress import Progress, run
from smears import smear
from validation import validation_names

#: Six well separated discs of radius 10 (diameter about 21 px).
CENTRES = [(20, 20), (20, 70), (20, 110), (70, 20), (70, 70), (70, 110)]


def discs(seed=0, radius=10, shape=(96, 140), centres=CENTRES) -> np.ndarray:
    rgb, _ = smear(shape=shape, centres=centres, radius=radius, seed=seed)
    return (rgb * 255).round().astype(np.uint8)


def test_diameter_of_synthetic_smears():
    images = [discs(seed) for seed in range(3)]
    assert napari_milseg.estimate_cell_diameter(images) == pytest.approx(21, rel=0.1)
    # one image alone is accepted, as an array or grayscale
    assert napari_milseg.estimate_cell_diameter(images[0]) == pytest.approx(21, rel=0.1)
    grey = images[0].mean(axis=-1).astype(np.uint8)
    assert napari_milseg.estimate_cell_diameter(grey) == pytest.approx(21, rel=0.1)


def test_large_images_are_shrunk_and_the_answer_is_in_their_pixels():
    side = 2 * ESTIMATE_SIDE
    centres = [(y, x) for y in (200, 600, 1000) for x in (200, 600, 1000)]
    image = discs(radius=80, shape=(side, side), centres=centres)
    assert napari_milseg.estimate_cell_diameter(image) == pytest.approx(161, rel=0.1)


def test_estimate_reports_progress_and_reads_lazily():
    read = []

    def lazy():
        for seed in range(3):
            read.append(seed)
            yield discs(seed)

    steps = estimate_diameter_steps(lazy(), total=3)
    first = next(steps)
    assert isinstance(first, Progress) and (first.step, first.total) == (0, 3)
    assert read == [0]  # one image at a time
    reports = []
    assert run(steps, reports.append) == pytest.approx(21, rel=0.1)
    assert reports[-1].step == reports[-1].total == 3


def test_no_cells_no_images_and_bad_images_are_explained():
    blank = np.full((80, 80, 3), 220, np.uint8)
    with pytest.raises(ValueError, match="no cell-like objects"):
        napari_milseg.estimate_cell_diameter([blank, blank])
    with pytest.raises(ValueError, match="no usable image"):
        napari_milseg.estimate_cell_diameter([])
    bad = np.zeros((5,), np.uint8)
    with pytest.raises(ImageError):
        napari_milseg.estimate_cell_diameter([discs(), bad])
    # a batch passes over what it cannot use
    assert run(estimate_diameter_steps([bad, discs()], skip=True)) == pytest.approx(21, rel=0.1)


def test_evenly_spaced_and_plane_indices():
    assert evenly_spaced(list(range(5)), 10) == [0, 1, 2, 3, 4]
    assert evenly_spaced(list(range(100)), 3) == [0, 50, 99]
    stack = np.stack([discs(seed) for seed in range(4)])
    indices = plane_indices(stack.shape, rgb=True, limit=2)
    assert len(indices) == 2
    np.testing.assert_array_equal(stack[indices[1]], stack[3])
    assert len(plane_indices(stack[0].shape, rgb=True)) == 1
    grey = stack.mean(axis=-1)
    assert [grey[i].shape for i in plane_indices(grey.shape, rgb=False)] == [(96, 140)] * 4
    with pytest.raises(ImageError):
        plane_indices((5,), rgb=False)


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_real_smears_at_two_magnifications(cbc, scale):
    # the CBC red cells are about 100 px across (the training estimate, and the
    # boxes' median side of 104 px); 20 smears pooled land within 15 % of it
    images = []
    for name in validation_names()[:20]:
        image = Image.open(cbc / "images" / name).convert("RGB")
        size = (round(image.width * scale), round(image.height * scale))
        images.append(np.asarray(image.resize(size, Image.BILINEAR)))
    estimate = napari_milseg.estimate_cell_diameter(images) / scale
    assert 80 <= estimate <= 125
