"""The npe2 labels writer (File > Save Selected Layer as .tif)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tifffile

from napari_milseg._writer import write_labels


def test_round_trip_small_labels_as_uint16(tmp_path):
    labels = np.array([[0, 1, 1], [2, 0, 300]], dtype=np.int32)
    written = write_labels(str(tmp_path / "cells.tif"), labels, {"name": "cells"})
    assert written == [str(tmp_path / "cells.tif")]
    back = tifffile.imread(written[0])
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, labels)


def test_many_labels_need_32_bits(tmp_path):
    labels = np.arange(70_000, dtype=np.int64).reshape(280, 250)
    path = write_labels(str(tmp_path / "many.tiff"), labels, {})[0]
    back = tifffile.imread(path)
    assert back.dtype == np.uint32
    np.testing.assert_array_equal(back, labels)


def test_stack_and_name_and_scale_are_kept(tmp_path):
    labels = np.zeros((2, 4, 5), dtype=np.uint8)
    labels[1, 2, 3] = 4
    path = write_labels(str(tmp_path / "s.tif"), labels, {"name": "st", "scale": [1, 0.5, 0.5]})[0]
    np.testing.assert_array_equal(tifffile.imread(path), labels)
    with tifffile.TiffFile(path) as tif:
        meta = tif.shaped_metadata[0]
    assert meta["name"] == "st" and meta["scale"] == [1.0, 0.5, 0.5]
    assert json.dumps(meta)  # plain JSON


def test_multiscale_writes_the_full_resolution_level(tmp_path):
    full = np.eye(8, dtype=np.int32)
    path = write_labels(str(tmp_path / "m.tif"), [full, full[::2, ::2]], {})[0]
    np.testing.assert_array_equal(tifffile.imread(path), full)


def test_replaces_an_existing_file_as_napari_asked(tmp_path):
    path = tmp_path / "cells.tif"
    path.write_bytes(b"old")
    write_labels(str(path), np.ones((3, 3), np.int32), {})
    np.testing.assert_array_equal(tifffile.imread(path), np.ones((3, 3)))


def test_failed_write_leaves_nothing_behind(tmp_path):
    path = tmp_path / "bad.tif"
    with pytest.raises(ValueError, match="negative"):
        write_labels(str(path), np.array([[-1, 2]]), {})
    assert os.listdir(tmp_path) == []
