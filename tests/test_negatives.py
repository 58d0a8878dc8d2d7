import numpy as np
import pytest

from napari_milseg.negatives import (
    NOISE_WIDTHS,
    TRAINING_NOISE_WIDTHS,
    background_light,
    estimate_diameter,
    estimate_foreground,
    synthesize_negative,
)
from smears import disc, smear


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_foreground_finds_the_cells_and_only_them():
    rgb, truth = smear()
    mask = estimate_foreground(rgb, diameter=24)
    assert mask.dtype == bool and mask.shape == truth.shape
    assert iou(mask, truth > 0) > 0.9


def test_foreground_fills_pale_centres_but_not_background_pockets():
    rgb, truth = smear(pale_centre=True)
    mask = estimate_foreground(rgb, diameter=24)
    assert mask[30, 30] and mask[60, 90]  # pale centres filled
    # a ring of cells around an empty pocket: the pocket stays background
    centres = [(48 + int(30 * np.sin(a)), 64 + int(30 * np.cos(a)))
               for a in np.linspace(0, 2 * np.pi, 9)[:-1]]
    rgb, _ = smear(shape=(96, 128), centres=centres, radius=13)
    mask = estimate_foreground(rgb, diameter=26)
    assert not mask[48, 64]


def test_training_foreground_also_finds_pale_cells():
    # two well-stained cells and one pale cell, barely darker than the background
    rgb, truth = smear(shape=(96, 160), centres=((30, 30), (60, 90)), radius=12)
    pale = disc(truth.shape, (40, 135), 12)
    noise = np.random.default_rng(1).normal(0, 0.01, (pale.sum(), 3))
    rgb[pale] = np.clip(np.array((0.85, 0.88, 0.9)) - (0.0075, 0.025, 0.015) + noise, 0, 1)
    around_pale = disc(truth.shape, (40, 135), 16)
    background = (truth == 0) & ~around_pale
    default = estimate_foreground(rgb, diameter=24)
    training = estimate_foreground(rgb, diameter=24, noise_widths=TRAINING_NOISE_WIDTHS)
    assert TRAINING_NOISE_WIDTHS < NOISE_WIDTHS
    assert default[pale].mean() < 0.2
    assert training[pale].mean() > 0.6
    assert iou(training & ~around_pale, truth > 0) > 0.9  # the stained cells as before
    assert default[background].mean() < 0.02 and training[background].mean() < 0.02


def test_foreground_on_dark_background_fluorescence():
    rgb, truth = smear(background=(0.05, 0.05, 0.05), cell=(0.2, 0.8, 0.3))
    mask = estimate_foreground(rgb, diameter=24)
    assert iou(mask, truth > 0) > 0.9


def test_estimate_diameter_of_isolated_discs():
    centres = [(20, 20), (20, 70), (20, 110), (70, 20), (70, 70), (70, 110)]
    rgb, truth = smear(shape=(96, 140), centres=centres, radius=10)
    d = estimate_diameter([estimate_foreground(rgb)])
    assert d == pytest.approx(21, rel=0.1)


def test_estimate_diameter_without_cells():
    with pytest.raises(ValueError, match="diameter"):
        estimate_diameter([np.zeros((50, 50), bool)])


def test_negative_removes_cells_and_keeps_background():
    rgb, truth = smear(seed=3)
    before = rgb.copy()
    mask = estimate_foreground(rgb, diameter=24)
    neg = synthesize_negative(rgb, mask, 24, np.random.default_rng(0))
    np.testing.assert_array_equal(rgb, before)  # input untouched
    assert neg.shape == rgb.shape and neg.dtype == np.float32
    assert 0 <= neg.min() and neg.max() <= 1
    # no cell colour left where the cells were
    cell = truth > 0
    assert np.abs(neg[cell] - np.array([0.85, 0.88, 0.9])).max() < 0.06
    # background far from cells is the original pixels
    far = ~np.pad(disc((96, 128), (30, 30), 22) | disc((96, 128), (60, 90), 22), 0)
    np.testing.assert_allclose(neg[far], rgb[far], atol=1e-5)
    # and a second look finds no cell-sized blob (only noise specks)
    from scipy import ndimage as ndi

    specks, n = ndi.label(estimate_foreground(neg, diameter=24))
    largest = np.bincount(specks.ravel())[1:].max() if n else 0
    assert largest < 0.2 * np.pi * 12**2


def test_background_light_follows_a_gradient():
    rgb, truth = smear()
    ramp = np.linspace(0.8, 1.0, rgb.shape[1], dtype=np.float32)[None, :, None]
    light, background = background_light(rgb * ramp, truth > 0, 24)
    assert light[48, 5, 0] < light[48, 120, 0]
    assert not background[30, 30] and background[5, 60]


def test_estimate_diameter_in_the_pixels_of_shrunk_images():
    centres = [(20, 20), (20, 70), (20, 110), (70, 20), (70, 70), (70, 110)]
    rgb, _ = smear(shape=(96, 140), centres=centres, radius=10)
    mask = estimate_foreground(rgb)
    # the same mask, said to be of an image shrunk to half: cells twice as large
    assert estimate_diameter([mask], [0.5]) == pytest.approx(42, rel=0.1)
    with pytest.raises(ValueError):
        estimate_diameter([mask], [1.0, 0.5])
