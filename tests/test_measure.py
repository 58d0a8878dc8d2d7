"""Tests for napari_milseg.measure: per-cell table, summary and CSV."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.measure import perimeter as skimage_perimeter

from napari_milseg.measure import COLUMNS, cell_table, summary, table_to_csv, write_csv


@pytest.fixture
def labels() -> np.ndarray:
    """A 3x4 rectangle (label 2) and a single pixel (label 5)."""
    out = np.zeros((8, 10), dtype=np.int32)
    out[1:4, 2:6] = 2
    out[6, 8] = 5
    return out


def test_columns_and_exact_values(labels):
    table = cell_table(labels)
    assert list(table) == list(COLUMNS)
    assert table["label"].tolist() == [2, 5]
    assert table["label"].dtype == np.int64
    assert table["area"].tolist() == [12.0, 1.0]
    disc_diameters = [math.sqrt(4 * 12 / math.pi), math.sqrt(4 / math.pi)]
    assert table["equivalent_diameter"] == pytest.approx(disc_diameters)
    # second moments of a 3x4 pixel block: (3^2 - 1) / 12 and (4^2 - 1) / 12
    assert table["eccentricity"][0] == pytest.approx(math.sqrt(1 - (8 / 12) / (15 / 12)))
    assert table["eccentricity"][1] == 0.0
    assert table["solidity"].tolist() == [1.0, 1.0]
    assert table["perimeter"][0] == pytest.approx(skimage_perimeter(labels == 2))
    assert np.isnan(table["mean_probability"]).all() and np.isnan(table["mean_intensity"]).all()


def test_isotropic_scale_multiplies_lengths_and_areas(labels):
    plain, scaled = cell_table(labels), cell_table(labels, scale=(1.0, 2.0, 2.0))
    assert scaled["area"] == pytest.approx(plain["area"] * 4)
    for name in ("perimeter", "equivalent_diameter"):
        assert scaled[name] == pytest.approx(plain[name] * 2)
    for name in ("eccentricity", "solidity"):
        assert scaled[name] == pytest.approx(plain[name])


def test_anisotropic_perimeter_is_the_scaled_contour_length(labels):
    table = cell_table(labels, scale=(1.0, 2.0))
    assert table["area"][0] == 24.0
    # marching-squares octagon of a 3x4 block: sides 2 (rows) and 3 (columns)
    # pixels long, four corner cuts of half a pixel each way
    assert table["perimeter"][0] == pytest.approx(2 * 2 * 1 + 2 * 3 * 2 + 4 * math.hypot(0.5, 1.0))


def test_means_of_heatmap_and_image(labels):
    heatmap = np.zeros(labels.shape)
    heatmap[1:4, 2:4] = 1.0  # half of cell 2
    heatmap[6, 8] = 0.25
    rgb = np.zeros((*labels.shape, 4), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2], rgb[..., 3] = 30, 60, 90, 255
    table = cell_table(labels, heatmap=heatmap, image=rgb)
    assert table["mean_probability"].tolist() == [0.5, 0.25]
    assert table["mean_intensity"].tolist() == [60.0, 60.0]  # alpha ignored
    grey = np.arange(labels.size, dtype=np.uint16).reshape(labels.shape)
    assert cell_table(labels, image=grey)["mean_intensity"][1] == grey[6, 8]


def test_stack_gets_a_plane_column(labels):
    stack = np.stack([labels, np.zeros_like(labels), labels == 2])
    table = cell_table(stack.astype(np.uint8))
    assert list(table)[:2] == ["plane", "label"]
    assert table["plane"].tolist() == [0, 0, 2]
    assert table["label"].tolist() == [2, 5, 1]


def test_no_cells_gives_empty_columns():
    table = cell_table(np.zeros((5, 5), dtype=np.uint16))
    assert list(table) == list(COLUMNS)
    assert all(len(column) == 0 for column in table.values())
    stats = summary(table)
    assert stats["count"] == 0 and math.isnan(stats["mean_area"])


def test_input_checks(labels):
    with pytest.raises(ValueError, match="integers"):
        cell_table(labels.astype(float))
    with pytest.raises(ValueError, match="at least 2D"):
        cell_table(np.zeros(4, int))
    with pytest.raises(ValueError, match="heatmap shape"):
        cell_table(labels, heatmap=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="image shape"):
        cell_table(labels, image=np.zeros((*labels.shape, 5)))
    with pytest.raises(ValueError, match="scale"):
        cell_table(labels, scale=(1.0, 0.0))


def test_summary(labels):
    labels[0, 0] = 7  # areas 12, 1, 1
    stats = summary(cell_table(labels))
    assert stats["count"] == 3
    assert stats["mean_area"] == pytest.approx(14 / 3)
    assert stats["median_area"] == 1.0


def test_csv_text_is_exact():
    table = {
        "label": np.array([1, 12]),
        "area": np.array([3.5, 0.1]),
        "mean_probability": np.array([0.25, np.nan]),
    }
    assert table_to_csv(table) == "label,area,mean_probability\n1,3.5,0.25\n12,0.1,\n"


def test_write_csv_never_overwrites_silently(tmp_path, labels):
    path = tmp_path / "cells.csv"
    write_csv(path, cell_table(labels))
    first = path.read_text()
    assert first.splitlines()[0] == ",".join(COLUMNS)
    assert first.splitlines()[1].startswith("2,12.0,")
    with pytest.raises(FileExistsError):
        write_csv(path, cell_table(labels[:, :5]))
    assert path.read_text() == first
    write_csv(path, cell_table(labels[:, :5]), overwrite=True)
    assert len(path.read_text().splitlines()) == 2
