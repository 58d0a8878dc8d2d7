"""A stand-in for the MIL network whose heatmap is known exactly.

``dark_model()`` scores every pixel by its darkness: dark blobs on a bright
background become heatmap blobs, mid grey (0.5) becomes exactly 0.5. Its
receptive field is one 4x4 output cell, so tiling cannot change its output
except by interpolation at tile edges. Core tests use it to get exact
expectations out of the tiling, scaling and labelling code without
depending on trained weights.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from napari_milseg.model import NET_DIAMETER, MilModel


class DarkNet(nn.Module):
    """Logit ``gain * (0.5 - grey)`` averaged over 4x4 blocks (output stride 4)."""

    def __init__(self, gain: float = 8.0) -> None:
        super().__init__()
        # a parameter so that MilModel.device works
        self.gain = nn.Parameter(torch.tensor(float(gain)), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x is normalised as (rgb - 0.5) / 0.25, so grey - 0.5 = 0.25 * mean
        grey_minus_half = 0.25 * x.mean(dim=1, keepdim=True)
        return F.avg_pool2d(-self.gain * grey_minus_half, 4)


def dark_model(diameter: float = NET_DIAMETER, gain: float = 8.0) -> MilModel:
    """A :class:`MilModel` around :class:`DarkNet` (scale 1 at the default diameter)."""
    return MilModel(net=DarkNet(gain).eval(), diameter=float(diameter), source="toy")


def disc_image(
    shape: tuple[int, int], centres: list[tuple[float, float]], radius: float,
    background: int = 230, foreground: int = 40,
) -> np.ndarray:
    """A uint8 RGB image of dark discs on a bright background."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    grey = np.full(shape, background, dtype=np.uint8)
    for cy, cx in centres:
        grey[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = foreground
    return np.repeat(grey[..., None], 3, axis=-1)
