"""The Edit and measure cells dock widget on a real headless napari viewer."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import tifffile

from napari_milseg._cells_widget import CellsWidget
from napari_milseg._widget import SegmentWidget
from napari_milseg.measure import COLUMNS


def two_peaks(shape=(40, 56)) -> np.ndarray:
    """Heatmap of two touching cells centred at (20, 20) and (20, 36)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    h = np.exp(-((yy - 20) ** 2 + (xx - 20) ** 2) / 50.0)
    h = np.maximum(h, np.exp(-((yy - 20) ** 2 + (xx - 36) ** 2) / 50.0))
    return h.astype(np.float32)


def ids(data) -> list[int]:
    values = np.unique(np.asarray(data))
    return [int(v) for v in values if v]


def warnings_(notes) -> list[str]:
    return [text for severity, text in notes if severity == "warning"]


@pytest.fixture
def merged(viewer):
    """An image segmented with low thresholds so that the two cells are one label."""
    seg = SegmentWidget(viewer)
    viewer.window.add_dock_widget(seg, name="Segment cells")
    image = viewer.add_image(np.full((40, 56), 100, np.uint8), name="img")
    seg.outer_slider.setValue(0.1)
    seg.inner_slider.setValue(0.25)  # below the valley (0.28): one core over both peaks
    seg.show_result(image, two_peaks())
    cells = viewer.layers["img cells"]
    assert ids(cells.data) == [1]
    return cells


@pytest.fixture
def cells_widget(viewer):
    widget = CellsWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Edit and measure cells")
    return widget


def place(widget, *points):
    layer = widget.points_layer()
    for p in points:
        layer.add(p)
    return layer


def test_pickers_find_the_plugin_layers(viewer, merged, cells_widget):
    assert cells_widget.labels_layer is merged
    assert cells_widget.heatmap_layer is viewer.layers["img heatmap"]
    assert cells_widget.intensity_layer is viewer.layers["img"]
    assert cells_widget.table["label"].tolist() == [1]
    assert cells_widget.summary_label.text().startswith("1 cell ·")


def test_split_a_merged_cell_at_the_heatmap_valley_and_undo(qtbot, viewer, merged, cells_widget):
    before = np.array(merged.data, copy=True)
    place(cells_widget, (20, 20), (20, 36))
    assert cells_widget.split()
    data = np.asarray(merged.data)
    assert ids(data) == [2, 3]  # new ids
    assert data[20, 20] == 2 and data[20, 36] == 3
    np.testing.assert_array_equal(data > 0, before > 0)  # no pixel lost or gained
    # the cut runs along the valley, midway between the peaks
    assert data[20, 27] == 2 and data[20, 29] == 3
    assert len(viewer.layers["img cells edit points"].data) == 0  # points used up
    assert cells_widget.table["label"].tolist() == [2, 3]
    assert cells_widget.summary_label.text().startswith("2 cells ·")

    merged.undo()  # one step takes the whole split back
    np.testing.assert_array_equal(merged.data, before)
    qtbot.waitUntil(lambda: cells_widget.table["label"].tolist() == [1])


def test_split_needs_two_points_in_the_cell(viewer, merged, cells_widget, notes):
    assert not cells_widget.split()
    assert any("Place points" in text for text in warnings_(notes))
    place(cells_widget, (20, 20))
    before = np.array(merged.data, copy=True)
    assert not cells_widget.split()
    assert any("at least two points" in text for text in warnings_(notes))
    np.testing.assert_array_equal(merged.data, before)


def test_split_without_a_heatmap_uses_the_distance_map(viewer, merged, cells_widget):
    viewer.layers.remove("img heatmap")
    assert cells_widget.heatmap_layer is None
    place(cells_widget, (20, 20), (20, 36))
    assert cells_widget.split()
    assert ids(merged.data) == [2, 3]
    assert np.isnan(cells_widget.table["mean_probability"]).all()


def test_merge_and_delete(viewer, cells_widget, notes):
    labels = np.zeros((30, 40), np.int32)
    labels[2:8, 2:8] = 4
    labels[2:8, 10:16] = 2
    labels[20:25, 20:30] = 7
    layer = viewer.add_labels(labels, name="hand")
    assert cells_widget.labels_layer is layer
    assert cells_widget.table["label"].tolist() == [2, 4, 7]

    place(cells_widget, (5, 5), (5, 12))
    assert cells_widget.merge()
    assert ids(layer.data) == [2, 7]
    assert np.all(np.asarray(layer.data)[2:8, 2:8] == 2)
    assert cells_widget.table["label"].tolist() == [2, 7]
    assert cells_widget.table["area"].tolist() == [72.0, 50.0]

    place(cells_widget, (22, 25))
    assert cells_widget.delete()
    assert ids(layer.data) == [2]
    assert cells_widget.summary_label.text().startswith("1 cell ·")

    place(cells_widget, (28, 2))  # background
    assert not cells_widget.delete()
    assert any("none of the labels" in text for text in warnings_(notes))


def test_columns_the_panel_does_not_measure_are_kept_by_label(qtbot, viewer, cells_widget):
    import pandas as pd

    labels = np.zeros((30, 40), np.int32)
    labels[2:8, 2:8] = 1
    labels[12:20, 12:20] = 2
    typed = pd.DataFrame({"index": [1, 2], "manual_class": ["neutrophil", "lymphocyte"]})
    layer = viewer.add_labels(labels.copy(), name="classified", features=typed)
    qtbot.waitUntil(lambda: "area" in layer.features.columns)
    assert list(layer.features["manual_class"]) == ["neutrophil", "lymphocyte"]
    layer.paint((25, 30), 3)  # a new cell: no class yet; the others keep theirs
    qtbot.waitUntil(lambda: cells_widget.table["label"].tolist() == [1, 2, 3])
    qtbot.waitUntil(lambda: len(layer.features) == 3)
    assert list(layer.features["manual_class"][:2]) == ["neutrophil", "lymphocyte"]
    assert pd.isna(layer.features["manual_class"][2])
    # without an index column the extra column cannot be joined: features are left alone
    other = viewer.add_labels(labels.copy(), name="scored", features={"score": [0.2, 0.9]})
    qtbot.waitUntil(lambda: cells_widget.labels_layer is other
                    and cells_widget.table["label"].tolist() == [1, 2])
    assert list(other.features.columns) == ["score"]


def test_table_follows_napari_paint_fill_and_undo(qtbot, viewer, cells_widget):
    labels = np.zeros((30, 40), np.int32)
    labels[2:8, 2:8] = 1
    layer = viewer.add_labels(labels, name="hand", scale=(0.5, 0.5))
    assert cells_widget.table["area"].tolist() == [36 * 0.25]
    layer.brush_size = 3
    layer.paint((20, 20), 5)
    qtbot.waitUntil(lambda: cells_widget.table["label"].tolist() == [1, 5])
    painted = int((np.asarray(layer.data) == 5).sum())
    assert cells_widget.table["area"][1] == pytest.approx(painted * 0.25)
    assert cells_widget.summary_label.text().startswith("2 cells ·")
    assert "units²" in cells_widget.summary_label.text()  # scaled, no unit given
    # the table is the layer's features, looked up by label
    assert list(layer.features["label"]) == [1, 5]
    assert list(layer.features["index"]) == [1, 5]
    assert set(COLUMNS) <= set(layer.features.columns)

    layer.fill((4, 4), 0)  # erase cell 1 with the fill tool
    qtbot.waitUntil(lambda: cells_widget.table["label"].tolist() == [5])
    assert cells_widget.table_view.rowCount() == 1
    layer.undo()
    qtbot.waitUntil(lambda: cells_widget.table["label"].tolist() == [1, 5])
    assert cells_widget.table_view.rowCount() == 2


def test_table_follows_a_brush_stroke(qtbot, viewer, cells_widget):
    # what napari's paint tool does with a mouse drag: one history block
    layer = viewer.add_labels(np.zeros((30, 40), np.int32), name="hand")
    layer.brush_size = 3
    with layer.block_history():
        for x in range(5, 15):
            layer.paint((10, x), 3, refresh=False)
        layer.refresh()
    qtbot.waitUntil(lambda: cells_widget.table["label"].tolist() == [3])
    assert cells_widget.table["area"][0] == (np.asarray(layer.data) == 3).sum()


def test_table_means_use_heatmap_and_image(viewer, merged, cells_widget):
    heat = np.asarray(viewer.layers["img heatmap"].data)
    mask = np.asarray(merged.data) == 1
    assert cells_widget.table["mean_probability"][0] == pytest.approx(heat[mask].mean(), rel=1e-6)
    assert cells_widget.table["mean_intensity"][0] == 100.0


def test_segment_rerun_refreshes_the_table(qtbot, viewer, merged, cells_widget):
    seg = viewer.window.dock_widgets["Segment cells"]
    seg.inner_slider.setValue(0.9)  # two cores now: two cells, same layer
    assert ids(merged.data) == [1, 2]
    qtbot.waitUntil(lambda: cells_widget.table["label"].tolist() == [1, 2])


def test_export_csv_and_labels_beside_it(viewer, merged, cells_widget, tmp_path, notes):
    place(cells_widget, (20, 20), (20, 36))
    cells_widget.split()
    csv_path, tif_path = cells_widget.export(tmp_path / "run1")
    assert (csv_path, tif_path) == (tmp_path / "run1.csv", tmp_path / "run1_labels.tif")
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(COLUMNS)
    assert [int(r["label"]) for r in rows] == [2, 3]
    data = np.asarray(merged.data)
    for row in rows:
        assert float(row["area"]) == (data == int(row["label"])).sum()
        assert 0 < float(row["mean_probability"]) <= 1
    np.testing.assert_array_equal(tifffile.imread(tif_path), data)

    # never overwritten silently, and nothing half-written
    csv_before, tif_before = csv_path.read_bytes(), tif_path.read_bytes()
    merged.paint((2, 2), 9)
    assert cells_widget.export(tmp_path / "run1.csv") is None
    assert any("already exist" in text for severity, text in notes if severity == "error")
    assert csv_path.read_bytes() == csv_before and tif_path.read_bytes() == tif_before
    tif_path.unlink()  # one of the two still exists: still refused
    assert cells_widget.export(tmp_path / "run1.csv") is None
    assert not tif_path.exists()
    assert cells_widget.export(tmp_path / "run1.csv", overwrite=True) is not None
    assert "9" in [line.split(",")[0] for line in csv_path.read_text().splitlines()]


def test_export_dialog_asks_before_replacing(viewer, merged, cells_widget, tmp_path, monkeypatch):
    from qtpy.QtWidgets import QFileDialog, QMessageBox

    target = tmp_path / "table.csv"
    target.write_text("precious")
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    asked = []

    def answer(reply):
        def question(*args, **kwargs):
            asked.append(args[2])
            return reply

        return question

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.No))
    cells_widget.export_button.click()
    assert target.read_text() == "precious" and len(asked) == 1 and str(target) in asked[0]
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
    cells_widget.export_button.click()
    assert target.read_text().startswith("label,area")
    assert (tmp_path / "table_labels.tif").exists()


def test_removing_layers_does_not_crash(viewer, merged, cells_widget, notes, tmp_path):
    place(cells_widget, (20, 20), (20, 36))
    viewer.layers.remove("img heatmap")
    viewer.layers.remove(merged)
    assert cells_widget.labels_layer is None
    assert cells_widget.table == {} and cells_widget.table_view.rowCount() == 0
    assert not cells_widget.split()
    assert cells_widget.export(tmp_path / "x.csv") is None
    assert [t for s, t in notes if s == "error"] == ["Nothing to export: pick a labels layer."]


def test_edits_in_one_plane_of_a_stack(viewer, cells_widget):
    stack = np.zeros((3, 20, 30), np.int32)
    stack[:, 5:15, 5:25] = 1
    layer = viewer.add_labels(stack, name="stack")
    assert cells_widget.table["plane"].tolist() == [0, 1, 2]
    place(cells_widget, (1, 10, 7), (1, 10, 22))
    assert cells_widget.split()
    data = np.asarray(layer.data)
    assert ids(data[1]) == [2, 3]
    assert ids(data[0]) == ids(data[2]) == [1]
    assert cells_widget.table["plane"].tolist() == [0, 1, 1, 2]


def test_points_made_for_a_2d_layer_are_not_used_on_a_stack(viewer, cells_widget, notes):
    flat = np.zeros((20, 30), np.int32)
    flat[5:15, 5:25] = 1
    viewer.add_labels(flat, name="flat")
    place(cells_widget, (10, 7))  # a 2D points layer, left empty by the edit below
    assert cells_widget.delete()
    stack = np.zeros((3, 20, 30), np.int32)
    stack[:, 5:15, 5:25] = 1
    layer = viewer.add_labels(stack, name="stack")
    points = place(cells_widget, (2, 10, 7))  # a new points layer with the stack's axes
    assert points.ndim == 3 and "flat edit points" not in viewer.layers
    assert cells_widget.delete()
    data = np.asarray(layer.data)
    assert ids(data[2]) == [] and ids(data[0]) == ids(data[1]) == [1]
    # points of the wrong axes are refused, not applied to plane 0
    cells_widget._points.data = np.empty((0, 3))
    wrong = viewer.add_points([[10, 7]], name="2d points")
    cells_widget._points = wrong
    assert not cells_widget.delete()
    assert any("2 axes" in text for text in warnings_(notes))
    assert ids(np.asarray(layer.data)[0]) == [1]


def test_a_multiscale_labels_layer_is_refused_not_half_measured(viewer, cells_widget, notes,
                                                                 tmp_path):
    full = np.zeros((64, 64), np.int32)
    full[10:20, 10:20] = 1
    viewer.add_labels([full, full[::2, ::2]], multiscale=True, name="pyramid")
    assert cells_widget.table == {}
    assert "multiscale" in cells_widget.summary_label.text()
    place(cells_widget, (15, 15))
    assert not cells_widget.delete()
    assert any("multiscale" in text for text in warnings_(notes))
    assert cells_widget.export(tmp_path / "t.csv") is None
    assert not list(tmp_path.iterdir())


def test_docked_from_the_manifest(viewer):
    _, widget = viewer.window.add_plugin_dock_widget("napari-milseg", "Edit and measure cells")
    assert isinstance(widget, CellsWidget)


def test_large_layers_are_measured_in_the_background_newest_request_last(
    qtbot, viewer, cells_widget, monkeypatch
):
    import napari_milseg._cells_widget as module

    # a small layer stands in for a large one: 40x56 is over this limit
    monkeypatch.setattr(module, "LIVE_PIXELS", 1000)
    measured = []
    original = module._measure_job

    def counted(layer, data, *rest):
        measured.append(ids(data))
        return original(layer, data, *rest)

    monkeypatch.setattr(module, "_measure_job", counted)
    labels = np.zeros((40, 56), np.int32)
    labels[5:15, 5:15] = 1
    layer = viewer.add_labels(labels, name="cells")
    assert cells_widget.labels_layer is layer
    assert cells_widget.measuring
    assert "measuring 'cells'" in cells_widget.summary_label.text()
    qtbot.waitUntil(lambda: not cells_widget.measuring, timeout=10_000)
    assert cells_widget.table["label"].tolist() == [1]
    assert cells_widget.summary_label.text().startswith("1 cell ·")

    # three changes while one measurement runs: only the last is measured next
    measured.clear()
    for n in (2, 3, 4):
        layer.data_setitem((np.array([20 + n]), np.array([30 + n])), n)
        cells_widget.refresh()
    qtbot.waitUntil(lambda: not cells_widget.measuring, timeout=10_000)
    assert measured[:2] == [[1, 2], [1, 2, 3, 4]] and [1, 2, 3] not in measured
    assert cells_widget.table["label"].tolist() == [1, 2, 3, 4]
    assert list(layer.features["label"]) == [1, 2, 3, 4]

    # picking another layer meanwhile drops the stale table
    other = viewer.add_labels(np.ones((40, 56), np.int32), name="other")
    layer.data_setitem((np.array([30]), np.array([40])), 5)
    cells_widget.labels_picker.setCurrentText("cells")
    cells_widget.labels_picker.setCurrentText("other")
    qtbot.waitUntil(lambda: not cells_widget.measuring, timeout=10_000)
    assert cells_widget.labels_layer is other
    assert cells_widget.table["label"].tolist() == [1]


def test_export_of_a_large_layer_writes_the_table_of_its_last_edit(
    qtbot, viewer, cells_widget, monkeypatch, tmp_path
):
    import napari_milseg._cells_widget as module

    monkeypatch.setattr(module, "LIVE_PIXELS", 1000)
    labels = np.zeros((40, 56), np.int32)
    labels[5:15, 5:15] = 1
    layer = viewer.add_labels(labels, name="cells")
    qtbot.waitUntil(lambda: not cells_widget.measuring, timeout=10_000)
    layer.data_setitem((np.array([30]), np.array([40])), 7)
    cells_widget.refresh()  # starts measuring in the background
    csv_path, tif_path = cells_widget.export(tmp_path / "out.csv")
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["label"]) for r in rows] == [1, 7]
    assert ids(tifffile.imread(tif_path)) == [1, 7]
    qtbot.waitUntil(lambda: not cells_widget.measuring, timeout=10_000)
    assert cells_widget.table["label"].tolist() == [1, 7]


def test_a_renamed_labels_layer_stays_picked_and_editable(viewer, cells_widget, notes):
    labels = np.zeros((20, 30), np.int32)
    labels[5:15, 5:25] = 1
    viewer.add_labels(np.zeros((20, 30), np.int32), name="other")
    layer = viewer.add_labels(labels, name="cells")
    assert cells_widget.labels_layer is layer
    layer.name = "patient12"
    assert cells_widget.labels_picker.currentText() == "patient12"
    assert cells_widget.labels_layer is layer
    place(cells_widget, (10, 10))
    assert cells_widget.delete()
    assert ids(layer.data) == [] and warnings_(notes) == []


def test_a_renamed_image_still_gives_its_cells_their_heatmap(viewer, merged, cells_widget):
    image = viewer.layers["img"]
    image.name = "patient12"
    assert merged.metadata["napari_milseg"]["image"] == "patient12"
    assert viewer.layers["img heatmap"].metadata["napari_milseg"]["image"] == "patient12"
    viewer.add_labels(np.zeros((40, 56), np.int32), name="other")
    cells_widget.labels_picker.setCurrentText(merged.name)
    assert cells_widget.heatmap_picker.currentText() == "img heatmap"
    assert cells_widget.image_picker.currentText() == "patient12"
