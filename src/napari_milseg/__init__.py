"""napari-milseg: find, separate and count cells in smears, trained without pixel labels.

The public API is importable from here; importing the package loads neither
torch nor Qt (they load on first use).

>>> import napari_milseg
>>> result = napari_milseg.segment(image)          # doctest: +SKIP
>>> result.count, result.labels.shape              # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "segment": "segmentation",
    "segment_stack": "segmentation",
    "Segmentation": "segmentation",
    "label_cells": "cells",
    "predict_heatmap": "heatmap",
    "estimate_cell_diameter": "diameter",
    "SegmentParams": "params",
    "Progress": "progress",
    "ImageError": "preprocess",
    "load_model": "model",
    "save_model": "model",
    "ModelError": "model",
    "bundled_model_path": "model",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # pragma: no cover
    from .cells import label_cells
    from .diameter import estimate_cell_diameter
    from .heatmap import predict_heatmap
    from .model import ModelError, bundled_model_path, load_model, save_model
    from .params import SegmentParams
    from .preprocess import ImageError
    from .progress import Progress
    from .segmentation import Segmentation, segment, segment_stack


def __getattr__(name: str):
    # lazy: `model` pulls in torch, which must not load at package import
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
