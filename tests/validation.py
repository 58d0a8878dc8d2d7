"""The validation split and the benchmark's box matching, for tests that score real smears."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VALIDATION = REPO / "benchmarks" / "splits" / "cbc-val.txt"


def cellmatch():
    """The benchmark's own matching module (``benchmarks/cellmatch.py``)."""
    spec = importlib.util.spec_from_file_location(
        "cellmatch", REPO / "benchmarks" / "cellmatch.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("cellmatch", module)
    spec.loader.exec_module(module)
    return module


def validation_names() -> list[str]:
    """File names of the 60 validation smears (never trained on)."""
    from napari_milseg.dataset import read_list

    return [path.name for path in read_list(VALIDATION)]
