"""Importing the package (and its command line parser) must stay cheap: no torch, no Qt."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "torchvision", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "napari")

PROBE = """
import json, sys
import napari_milseg
from napari_milseg import io, batch, params, preprocess, progress, cells, heatmap
from napari_milseg import segmentation
from napari_milseg.cli import build_parser
build_parser()
napari_milseg.SegmentParams, napari_milseg.label_cells, napari_milseg.segment
heavy = %r
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy)))
"""


def test_import_loads_neither_torch_nor_qt():
    out = subprocess.run(
        [sys.executable, "-c", PROBE % (HEAVY,)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_probe_would_see_torch():
    # the same check reports torch once something imports it, so the test above can fail
    probe = PROBE.replace("build_parser()", "build_parser(); import napari_milseg.model")
    out = subprocess.run(
        [sys.executable, "-c", probe % (HEAVY,)], capture_output=True, text=True, check=True
    )
    assert "torch" in json.loads(out.stdout.strip().splitlines()[-1])
