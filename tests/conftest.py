"""Fixtures shared by all tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def cbc_dir() -> Path:
    """The shared CBC training smears (``../shared/data/cbc-train`` beside the checkout)."""
    return Path(os.environ.get("MILSEG_DATA", REPO.parent / "shared" / "data" / "cbc-train"))


@pytest.fixture(scope="session")
def cbc() -> Path:
    """Folder with ``images/`` and ``annotations/`` of the CBC smears; skips if absent."""
    path = cbc_dir()
    if not (path / "images").is_dir():
        pytest.skip(f"CBC data not found at {path}")
    return path


@pytest.fixture(scope="session")
def smear(cbc) -> np.ndarray:
    """One real 640x480 RGB smear (uint8)."""
    from PIL import Image

    return np.asarray(Image.open(cbc / "images" / "BloodImage_00000.jpg").convert("RGB"))


@pytest.fixture(scope="session")
def random_model_path(tmp_path_factory) -> Path:
    """An untrained (seeded) model saved to disk, for plumbing tests."""
    from napari_milseg.model import new_model, save_model

    path = tmp_path_factory.mktemp("models") / "random.pt"
    return save_model(new_model(diameter=100, device="cpu", seed=0), path)


@pytest.fixture
def closer_looks(monkeypatch) -> list[bool]:
    """The ``closer_look`` of every heatmap that segmentation makes, in order."""
    import inspect

    import napari_milseg.segmentation as segmentation

    real = segmentation.heatmap_steps
    default = inspect.signature(real).parameters["closer_look"].default
    seen: list[bool] = []

    def spy(*args, closer_look=default, **kwargs):
        seen.append(closer_look)
        return real(*args, closer_look=closer_look, **kwargs)

    monkeypatch.setattr(segmentation, "heatmap_steps", spy)
    return seen
