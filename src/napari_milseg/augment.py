"""Training crops and augmentation, the same for positives and negatives.

Any augmentation applied to one class only would give the network a
shortcut ("jittered colours mean background"), so every crop, positive,
negative or composite, goes through the same random geometry and
photometry. Geometry acts on the image and on its per-pixel maps alike.
"""

from __future__ import annotations

import numpy as np


def random_crop(
    arrays: list[np.ndarray], side: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Cut the same random ``side x side`` window out of several aligned arrays.

    Arrays smaller than ``side`` are padded by reflection (images) or with
    their edge value (maps); all share the image's first two axes.

    Parameters
    ----------
    arrays : list of ndarray, shape (H, W, ...)
        Image first, then per-pixel maps.
    side : int
        Crop side in pixels.
    rng : numpy.random.Generator

    Returns
    -------
    list of ndarray, shape (side, side, ...)
    """
    height, width = arrays[0].shape[:2]
    pad_y, pad_x = max(0, side - height), max(0, side - width)
    if pad_y or pad_x:
        padded = []
        for i, a in enumerate(arrays):
            spec = [(0, pad_y), (0, pad_x)] + [(0, 0)] * (a.ndim - 2)
            mode = "reflect" if i == 0 and min(height, width) > 1 else "edge"
            padded.append(np.pad(a, spec, mode=mode))
        arrays = padded
        height, width = arrays[0].shape[:2]
    y = int(rng.integers(0, height - side + 1))
    x = int(rng.integers(0, width - side + 1))
    return [a[y : y + side, x : x + side] for a in arrays]


def geometric(tensors, rng: np.random.Generator):
    """Random flips and quarter turns, the same for every tensor of a sample.

    Parameters
    ----------
    tensors : list of torch.Tensor, shape (C, H, W)
        Image and maps of one square sample.
    rng : numpy.random.Generator

    Returns
    -------
    list of torch.Tensor
    """
    import torch

    turns = int(rng.integers(0, 4))
    flip = bool(rng.integers(0, 2))
    out = []
    for t in tensors:
        if flip:
            t = torch.flip(t, dims=(-1,))
        out.append(torch.rot90(t, turns, dims=(-2, -1)))
    return out


def photometric(batch, rng: np.random.Generator):
    """Random brightness, contrast, saturation, hue, gamma, grey, blur and noise.

    Parameters
    ----------
    batch : torch.Tensor, shape (N, 3, H, W), in [0, 1]
        RGB images; each gets its own random draw.
    rng : numpy.random.Generator

    Returns
    -------
    torch.Tensor, shape (N, 3, H, W), in [0, 1]
    """
    import torch
    from torch.nn import functional as F

    n = batch.shape[0]

    def draw(low, high):
        return torch.from_numpy(rng.uniform(low, high, (n, 1, 1, 1)).astype(np.float32))

    x = batch
    grey = x.mean(dim=1, keepdim=True)
    x = grey + (x - grey) * draw(0.6, 1.4)  # saturation
    x = _rotate_hue(x, draw(-0.08, 0.08))
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = mean + (x - mean) * draw(0.75, 1.25)  # contrast
    x = x * draw(0.8, 1.2)  # brightness
    x = x.clamp(1e-4, 1.0) ** draw(0.8, 1.25)  # gamma
    to_grey = torch.from_numpy(rng.random(n) < 0.1)
    if to_grey.any():
        x[to_grey] = x[to_grey].mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    blur = rng.random(n) < 0.25
    if blur.any():
        kernel = torch.tensor([0.25, 0.5, 0.25])
        k2 = (kernel[:, None] * kernel[None, :]).expand(3, 1, 3, 3).contiguous()
        idx = torch.from_numpy(blur)
        x[idx] = F.conv2d(F.pad(x[idx], (1, 1, 1, 1), mode="replicate"), k2, groups=3)
    x = x + torch.randn_like(x) * draw(0.0, 0.025)
    return x.clamp(0.0, 1.0)


def _rotate_hue(x, angle):
    """Rotate hue by ``angle`` turns in YIQ space."""
    import torch

    to_yiq = torch.tensor(
        [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]]
    )
    from_yiq = torch.linalg.inv(to_yiq)
    yiq = torch.einsum("ij,njhw->nihw", to_yiq, x)
    theta = angle.view(-1) * 2 * np.pi
    cos, sin = torch.cos(theta).view(-1, 1, 1), torch.sin(theta).view(-1, 1, 1)
    i, q = yiq[:, 1], yiq[:, 2]
    yiq = torch.stack([yiq[:, 0], cos * i - sin * q, sin * i + cos * q], dim=1)
    return torch.einsum("ij,njhw->nihw", from_yiq, yiq)
