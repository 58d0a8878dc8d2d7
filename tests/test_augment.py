import numpy as np
import torch

from napari_milseg.augment import geometric, photometric, random_crop


def test_random_crop_cuts_the_same_window_everywhere():
    image = np.arange(20 * 30 * 3, dtype=np.float32).reshape(20, 30, 3)
    labels = image[..., 0].copy()
    a, b = random_crop([image, labels], 8, np.random.default_rng(1))
    assert a.shape == (8, 8, 3) and b.shape == (8, 8)
    np.testing.assert_array_equal(a[..., 0], b)


def test_random_crop_pads_small_arrays():
    image = np.ones((5, 6, 3), np.float32)
    mask = np.ones((5, 6), np.float32)
    a, b = random_crop([image, mask], 9, np.random.default_rng(0))
    assert a.shape == (9, 9, 3) and b.shape == (9, 9)
    assert (b == 1).all()


def test_geometric_moves_image_and_map_together():
    rng = np.random.default_rng(3)
    image = torch.rand(3, 6, 6)
    flag = image[:1].clone()
    for _ in range(8):
        a, b = geometric([image, flag], rng)
        torch.testing.assert_close(a[:1], b)


def test_photometric_keeps_range_and_shape():
    batch = torch.rand(6, 3, 16, 16)
    out = photometric(batch.clone(), np.random.default_rng(0))
    assert out.shape == batch.shape
    assert out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, batch)
