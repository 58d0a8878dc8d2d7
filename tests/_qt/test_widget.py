"""The Segment cells dock widget on a real headless napari viewer.

Most tests use the toy model (its heatmap is the darkness of the image, so
three dark discs give three cells) or hand a synthetic heatmap to the
widget, so they hold with or without trained weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from qtpy.QtCore import Qt

from napari_milseg import label_cells
from napari_milseg._widget import SegmentWidget
from smears import JOINED_DIAMETER, lobed_cell, painted, pair, with_neighbours
from toy_model import dark_model, disc_image

CENTRES = [(40, 40), (40, 120), (100, 80)]


def wait_done(qtbot, widget, timeout: int = 60_000) -> None:
    qtbot.waitUntil(lambda: not widget.running, timeout=timeout)


def errors(notes) -> list[str]:
    return [text for severity, text in notes if severity == "error"]


def two_blobs() -> np.ndarray:
    """A heatmap with a strong (0.95) and a weak (0.75) peak, 20 px apart."""
    yy, xx = np.mgrid[:40, :60]
    h = 0.95 * np.exp(-((yy - 20) ** 2 + (xx - 20) ** 2) / 72.0)
    h += 0.75 * np.exp(-((yy - 20) ** 2 + (xx - 40) ** 2) / 72.0)
    return np.clip(h, 0, 1).astype(np.float32)


def n_cells(labels) -> int:
    values = np.unique(np.asarray(labels))
    return int(np.count_nonzero(values))


def names(viewer) -> list[str]:
    return [layer.name for layer in viewer.layers]


def test_segment_adds_heatmap_and_cells_layers(qtbot, viewer, widget, discs, notes):
    image = viewer.add_image(discs, name="smear")
    assert widget.image_layer is image  # the new layer is active, so it is picked
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
    assert widget.running
    wait_done(qtbot, widget)

    assert names(viewer) == ["smear", "smear heatmap", "smear cells"]
    heat, cells = viewer.layers["smear heatmap"], viewer.layers["smear cells"]
    assert heat.data.shape == cells.data.shape == (150, 170)
    assert heat.data.dtype == np.float32
    assert 0.0 <= heat.data.min() and heat.data.max() <= 1.0
    assert heat.colormap.name == "inferno"
    assert str(heat.blending) == "additive"
    assert 0 < heat.opacity < 1
    assert tuple(heat.contrast_limits) == (0.0, 1.0)
    assert cells.data.dtype.kind in "iu"
    assert n_cells(cells.data) == 3
    for cy, cx in CENTRES:
        assert cells.data[cy, cx] > 0
    assert widget.count_label.text() == "3 cells"
    assert widget.cells_layer is cells and widget.heatmap_layer is heat
    assert errors(notes) == []


def test_rerun_updates_the_layers_in_place(qtbot, viewer, widget, discs):
    image = viewer.add_image(discs, name="smear")
    widget.segment()
    wait_done(qtbot, widget)
    heat, cells = viewer.layers["smear heatmap"], viewer.layers["smear cells"]
    image.data = disc_image((150, 170), CENTRES[:2], 18)
    widget.segment()
    wait_done(qtbot, widget)
    assert names(viewer) == ["smear", "smear heatmap", "smear cells"]
    assert viewer.layers["smear heatmap"] is heat and viewer.layers["smear cells"] is cells
    assert n_cells(cells.data) == 2
    assert widget.count_label.text() == "2 cells"


def test_second_click_while_running_is_harmless(qtbot, viewer, widget, discs, notes):
    viewer.add_image(discs, name="smear")
    widget.run_button.click()
    assert widget.running and widget.run_button.text() == "Cancel"
    assert widget.segment() is False  # no second run while one is going
    widget.run_button.click()  # cancels
    assert not widget.run_button.isEnabled()
    wait_done(qtbot, widget)
    assert widget.run_button.isEnabled() and widget.run_button.text() == "Segment"
    # the run either finished before the cancel took effect or left nothing behind
    assert names(viewer) in (["smear"], ["smear", "smear heatmap", "smear cells"])
    assert errors(notes) == []
    # and the widget works afterwards
    widget.run_button.click()
    wait_done(qtbot, widget)
    assert names(viewer) == ["smear", "smear heatmap", "smear cells"]


def test_sliders_relabel_the_cached_heatmap(viewer, widget, monkeypatch):
    image = viewer.add_image(np.zeros((40, 60), np.float32), name="img")
    heatmap = two_blobs()
    widget.show_result(image, heatmap)
    cells = viewer.layers["img cells"]
    np.testing.assert_array_equal(cells.data, label_cells(heatmap, 0.8, 0.5))
    # the strong blob has a core; the weak one (0.75) is a coreless cell
    assert n_cells(cells.data) == 2

    # the network must not run again: any model use would fail
    import napari_milseg.segmentation as segmentation

    monkeypatch.setattr(segmentation, "heatmap_steps", None)
    widget.outer_slider.setValue(0.78)  # above the weak blob's peak
    assert not widget.running
    assert "hand edits" not in widget.status_label.text()
    assert viewer.layers["img cells"] is cells
    np.testing.assert_array_equal(cells.data, label_cells(heatmap, 0.8, 0.78))
    assert n_cells(cells.data) == 1
    assert widget.count_label.text() != "2 cells"

    widget.inner_slider.setValue(0.7)  # pushes outer down along with it
    assert widget.outer == pytest.approx(0.69)
    np.testing.assert_array_equal(cells.data, label_cells(heatmap, 0.7, 0.69))
    assert n_cells(cells.data) == 2
    assert widget.count_label.text() == "2 cells"

    widget.outer_slider.setValue(0.3)
    np.testing.assert_array_equal(cells.data, label_cells(heatmap, 0.7, 0.3))
    assert (np.asarray(cells.data) > 0).sum() > (label_cells(heatmap, 0.7, 0.69) > 0).sum()
    assert names(viewer) == ["img", "img heatmap", "img cells"]


def test_large_heatmaps_are_split_in_the_background_ending_at_the_last_thresholds(
    qtbot, viewer, widget, monkeypatch
):
    import napari_milseg._widget as widget_module

    # a small map stands in for a large one: 40x60 is over this limit
    monkeypatch.setattr(widget_module, "LIVE_PIXELS", 1000)
    splits = []
    original = widget_module._resplit_job

    def counted(heatmap, inner, outer, *rest):
        splits.append((inner, outer))
        return original(heatmap, inner, outer, *rest)

    monkeypatch.setattr(widget_module, "_resplit_job", counted)
    idle = lambda: not widget.splitting  # noqa: E731
    image = viewer.add_image(np.zeros((40, 60), np.float32), name="img")
    heatmap = two_blobs()
    widget.show_result(image, heatmap)
    assert names(viewer) == ["img", "img heatmap"]  # the cells follow from the worker
    qtbot.waitUntil(idle, timeout=10_000)
    cells = viewer.layers["img cells"]
    np.testing.assert_array_equal(cells.data, label_cells(heatmap, 0.8, 0.5))

    # a drag: each move only replaces the request that runs next
    for outer in (0.78, 0.6, 0.3):
        widget.outer_slider.setValue(outer)
    np.testing.assert_array_equal(cells.data, label_cells(heatmap, 0.8, 0.5))  # not yet
    qtbot.waitUntil(idle, timeout=10_000)
    assert splits == [(0.8, 0.5), (0.8, 0.78), (0.8, 0.3)]
    assert viewer.layers["img cells"] is cells
    np.testing.assert_array_equal(cells.data, label_cells(heatmap, 0.8, 0.3))
    assert n_cells(cells.data) == 1  # at 0.3 the two blobs are one region
    assert widget.count_label.text() == "1 cell"
    assert "0.80 / 0.30" in widget.status_label.text()

    # a split that ends after the image was segmented again is dropped
    widget.inner_slider.setValue(0.7)
    newer = np.zeros_like(heatmap)
    newer[5:15, 5:15] = 0.9
    widget.show_result(image, newer, label_cells(newer, 0.7, 0.5))
    qtbot.waitUntil(idle, timeout=10_000)
    np.testing.assert_array_equal(cells.data, label_cells(newer, 0.7, 0.5))


def test_every_split_merges_wide_cells_at_the_heatmaps_diameter(viewer, widget):
    image = viewer.add_image(np.zeros((80, 80), np.float32), name="img")
    heatmap = lobed_cell(20)
    widget.show_result(image, heatmap, diameter=20)
    cells = viewer.layers["img cells"]
    assert n_cells(cells.data) == 1  # one cell, not one per lobe
    widget.inner_slider.setValue(0.85)
    np.testing.assert_array_equal(cells.data, label_cells(heatmap, 0.85, 0.5, diameter=20))
    assert n_cells(cells.data) == 1
    # a heatmap shown without its diameter is split without the merge
    widget.show_result(image, heatmap)
    assert n_cells(viewer.layers["img cells"].data) == 3


def test_the_count_line_speaks_of_the_picked_image(viewer, widget):
    first = viewer.add_image(np.zeros((40, 60), np.float32), name="first")
    viewer.add_image(np.zeros((40, 60), np.float32), name="second")
    assert widget.image_layer.name == "second"
    # a result for another image (a run that ends after the picker moved on)
    widget.show_result(first, two_blobs())
    assert n_cells(viewer.layers["first cells"].data) == 2
    assert widget.count_label.text() == ""
    widget.image_picker.setCurrentText("first")
    assert widget.count_label.text() == "2 cells"


def test_split_joined_red_cells_is_off_by_default_and_applies_at_once(viewer, widget):
    labels = with_neighbours(pair())  # a pair of red cells as one cell, and three lone ones
    image = viewer.add_image(painted(labels, {}), name="pair")
    heatmap = np.where(labels > 0, 0.9, 0.0).astype(np.float32)  # one core over the pair
    widget.show_result(image, heatmap, diameter=JOINED_DIAMETER)
    cells = viewer.layers["pair cells"]
    assert not widget.joined_check.isChecked()
    assert n_cells(cells.data) == 4
    widget.joined_check.setChecked(True)  # no Segment needed: the cached heatmap is split again
    assert n_cells(cells.data) == 5
    np.testing.assert_array_equal(
        cells.data, label_cells(heatmap, diameter=JOINED_DIAMETER, image=image.data)
    )
    assert widget._params().split_joined is True
    widget.joined_check.setChecked(False)
    assert n_cells(cells.data) == 4


def test_segment_passes_its_diameter_to_the_slider_splits(
    qtbot, viewer, widget, discs, monkeypatch
):
    import napari_milseg._widget as widget_module

    viewer.add_image(discs, name="smear")
    widget.diameter_edit.setText("40")
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
    wait_done(qtbot, widget)
    seen = []
    original = widget_module.label_planes

    def spy(heatmap, inner, outer, diameter=None, *rest):
        seen.append(diameter)
        return original(heatmap, inner, outer, diameter, *rest)

    monkeypatch.setattr(widget_module, "label_planes", spy)
    widget.outer_slider.setValue(0.4)
    assert seen == [40.0]


def test_segment_shows_the_labels_its_worker_made(qtbot, viewer, widget, discs, monkeypatch):
    import napari_milseg._widget as widget_module

    image = viewer.add_image(discs, name="smear")
    calls = []
    monkeypatch.setattr(widget_module, "label_planes", lambda *a: calls.append(a))
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
    wait_done(qtbot, widget)
    assert not calls  # not split again in napari's thread
    heat = viewer.layers["smear heatmap"].data
    np.testing.assert_array_equal(viewer.layers["smear cells"].data, label_cells(heat))
    assert widget.count_label.text() == "3 cells"
    assert image is widget.image_layer


def test_slider_moved_during_segment_splits_at_the_new_thresholds(qtbot, viewer, widget, discs):
    viewer.add_image(discs, name="smear")
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
    assert widget.running
    widget.outer_slider.setValue(0.3)
    wait_done(qtbot, widget)
    heat = viewer.layers["smear heatmap"].data
    expected = label_cells(heat, 0.8, 0.3)
    assert not np.array_equal(expected, label_cells(heat, 0.8, 0.5))
    np.testing.assert_array_equal(viewer.layers["smear cells"].data, expected)


def test_split_box_ticked_during_segment_applies_to_its_result(qtbot, viewer, widget):
    # two overlapping dark discs (one core for the toy model) and one apart
    image = disc_image((120, 160), [(50, 45), (50, 77), (50, 130)], 18)
    viewer.add_image(image, name="pair")
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
    assert widget.running
    widget.joined_check.setChecked(True)  # after the click: the run itself does not split
    wait_done(qtbot, widget)
    heat = viewer.layers["pair heatmap"].data
    expected = label_cells(heat, diameter=32, image=image)
    assert n_cells(expected) == n_cells(label_cells(heat, diameter=32)) + 1
    np.testing.assert_array_equal(viewer.layers["pair cells"].data, expected)
    assert widget.count_label.text() == "3 cells"


def test_outer_is_kept_below_inner(widget):
    assert (widget.inner, widget.outer) == (0.8, 0.5)
    widget.inner_slider.setValue(0.4)
    assert widget.inner == pytest.approx(0.4)
    assert widget.outer == pytest.approx(0.39)
    widget.outer_slider.setValue(0.95)
    assert widget.outer == pytest.approx(0.95)
    assert widget.inner == pytest.approx(0.96)
    widget.outer_slider.setValue(0.99)  # beyond its range: clamped
    assert widget.outer == pytest.approx(0.98)
    assert widget.inner == pytest.approx(0.99)
    widget.inner_slider.setValue(0.0)
    assert widget.inner == pytest.approx(0.02)
    assert widget.outer == pytest.approx(0.01)


def test_hand_edits_survive_slider_moves(qtbot, viewer, widget, notes):
    image = viewer.add_image(np.zeros((40, 60), np.float32), name="img")
    heatmap = two_blobs()
    widget.show_result(image, heatmap)
    cells = viewer.layers["img cells"]
    cells.brush_size = 3
    cells.paint((35, 55), 9)  # the user paints a cell napari's way
    edited = np.array(cells.data, copy=True)
    assert edited[35, 55] == 9

    qtbot.waitUntil(lambda: "hand edits" in widget.status_label.text())
    widget.inner_slider.setValue(0.7)
    np.testing.assert_array_equal(cells.data, edited)  # untouched
    assert names(viewer) == ["img", "img heatmap", "img cells", "img cells [2]"]
    new = viewer.layers["img cells [2]"]
    np.testing.assert_array_equal(new.data, label_cells(heatmap, 0.7, 0.5))
    assert any("hand edits" in text for _, text in notes)
    assert widget.cells_layer is new

    # the new layer is now the one updated in place
    widget.inner_slider.setValue(0.75)
    assert names(viewer)[-1] == "img cells [2]" and len(viewer.layers) == 4
    np.testing.assert_array_equal(new.data, label_cells(heatmap, 0.75, 0.5))
    np.testing.assert_array_equal(cells.data, edited)


def test_undone_edit_is_no_edit(viewer, widget):
    image = viewer.add_image(np.zeros((40, 60), np.float32), name="img")
    widget.show_result(image, two_blobs())
    cells = viewer.layers["img cells"]
    cells.paint((35, 55), 9)
    cells.undo()
    widget.inner_slider.setValue(0.7)
    assert names(viewer) == ["img", "img heatmap", "img cells"]
    assert n_cells(cells.data) == 2


def test_rerun_after_hand_edit_writes_a_new_layer(qtbot, viewer, widget, discs):
    viewer.add_image(discs, name="smear")
    widget.segment()
    wait_done(qtbot, widget)
    cells = viewer.layers["smear cells"]
    cells.fill((40, 40), 0)  # erase a cell with the fill tool
    edited = np.array(cells.data, copy=True)
    assert n_cells(edited) == 2
    widget.segment()
    wait_done(qtbot, widget)
    np.testing.assert_array_equal(cells.data, edited)
    assert n_cells(viewer.layers["smear cells [2]"].data) == 3


def test_layers_the_user_made_are_never_taken_over(viewer, widget):
    image = viewer.add_image(np.zeros((40, 60), np.float32), name="img")
    mine = viewer.add_labels(np.full((40, 60), 4, np.int32), name="img cells")
    viewer.layers.selection.active = image
    widget.show_result(image, two_blobs())
    assert np.all(mine.data == 4)
    assert widget.cells_layer.name == "img cells [2]"


def test_export_round_trip_and_no_silent_overwrite(viewer, widget, tmp_path, notes):
    image = viewer.add_image(np.zeros((40, 60), np.float32), name="img")
    widget.show_result(image, two_blobs())
    cells = viewer.layers["img cells"]
    cells.paint((35, 55), 300)  # edits are exported too; 300 needs 16 bits
    path = widget.export_labels(tmp_path / "cells")
    assert path == tmp_path / "cells.tif"
    back = tifffile.imread(path)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, cells.data)

    before = path.read_bytes()
    cells.paint((5, 5), 7)
    assert widget.export_labels(path) is None
    assert path.read_bytes() == before
    assert any("already exists" in text for text in errors(notes))
    assert widget.export_labels(path, overwrite=True) == path
    assert tifffile.imread(path)[5, 5] == 7


def test_export_to_a_folder_is_refused(viewer, widget, tmp_path, notes):
    image = viewer.add_image(np.zeros((40, 60), np.float32), name="img")
    widget.show_result(image, two_blobs())
    folder = tmp_path / "results"
    folder.mkdir()
    assert widget.export_labels(folder) is None
    assert widget.export_labels(f"{folder}/") is None
    assert any("is a folder" in text for text in errors(notes))
    assert list(tmp_path.iterdir()) == [folder] and not list(folder.iterdir())


def test_new_pixels_in_the_image_are_not_split_with_the_old_heatmap(viewer, widget):
    image = viewer.add_image(np.zeros((40, 60), np.float32), name="img")
    widget.show_result(image, two_blobs())
    cells = viewer.layers["img cells"]
    before = np.array(cells.data)
    image.data = np.zeros((30, 30), np.float32)  # another picture in the same layer
    widget.inner_slider.setValue(0.7)
    np.testing.assert_array_equal(cells.data, before)  # left alone, not re-split
    assert "changed since it was segmented" in widget.status_label.text()
    assert widget.count_label.text() == ""


def test_export_dialog_asks_before_replacing(viewer, widget, tmp_path, monkeypatch):
    from qtpy.QtWidgets import QFileDialog, QMessageBox

    image = viewer.add_image(np.zeros((40, 60), np.float32), name="img")
    widget.show_result(image, two_blobs())
    target = tmp_path / "cells.tif"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    asked = []

    def no(*args):
        asked.append(args[2])
        return QMessageBox.StandardButton.No

    widget.export_button.click()  # nothing there yet: written without asking
    assert asked == []
    np.testing.assert_array_equal(tifffile.imread(target), viewer.layers["img cells"].data)
    target.write_bytes(b"precious")
    monkeypatch.setattr(QMessageBox, "question", no)
    widget.export_button.click()
    assert len(asked) == 1 and str(target) in asked[0]
    assert target.read_bytes() == b"precious"
    monkeypatch.setattr(QMessageBox, "question", lambda *a: QMessageBox.StandardButton.Yes)
    widget.export_button.click()
    np.testing.assert_array_equal(tifffile.imread(target), viewer.layers["img cells"].data)


def test_export_before_segmenting_explains(widget, tmp_path, notes):
    assert widget.export_labels(tmp_path / "x.tif") is None
    assert any("segment" in text.lower() for text in errors(notes))
    assert not (tmp_path / "x.tif").exists()


@pytest.mark.parametrize("rgb", [False, True])
def test_stack_is_segmented_plane_by_plane(qtbot, viewer, widget, rgb):
    planes = [disc_image((150, 170), CENTRES[:k], 18) for k in (3, 1, 2)]
    stack = np.stack(planes) if rgb else np.stack(planes)[..., 0]
    image = viewer.add_image(stack, name="stack", rgb=rgb)
    assert widget.image_layer is image
    seen = []
    widget.progress_bar.valueChanged.connect(seen.append)
    widget.segment()
    wait_done(qtbot, widget)
    cells = viewer.layers["stack cells"]
    heat = viewer.layers["stack heatmap"]
    assert cells.data.shape == heat.data.shape == (3, 150, 170)
    assert [n_cells(p) for p in cells.data] == [3, 1, 2]
    assert widget.count_label.text() == "6 cells in 3 planes (1 to 3 per plane)"
    assert max(seen) >= 2  # progress went plane by plane
    # sliders re-split every plane of the cached stack
    widget.inner_slider.setValue(0.99)
    assert viewer.layers["stack cells"] is cells
    np.testing.assert_array_equal(
        cells.data, np.stack([label_cells(h, 0.99, 0.5) for h in heat.data])
    )


def test_image_scale_and_units_are_carried_to_the_outputs(qtbot, viewer, widget, discs):
    image = viewer.add_image(discs, name="smear", scale=(0.5, 0.5), translate=(10, 20))
    image.units = ("um", "um")
    widget.segment()
    wait_done(qtbot, widget)
    for name in ("smear heatmap", "smear cells"):
        np.testing.assert_allclose(viewer.layers[name].scale, (0.5, 0.5))
        np.testing.assert_allclose(viewer.layers[name].translate, (10, 20))
        assert [str(u) for u in viewer.layers[name].units] == ["micrometer", "micrometer"]


def test_outputs_line_up_with_a_turned_sheared_image_and_follow_a_new_pixel_size(
    qtbot, viewer, widget, discs
):
    image = viewer.add_image(discs, name="smear", scale=(0.5, 0.5), translate=(10, 5),
                             rotate=30, shear=[0.2])
    widget.segment()
    wait_done(qtbot, widget)
    heat, cells = viewer.layers["smear heatmap"], viewer.layers["smear cells"]
    for layer in (heat, cells):
        np.testing.assert_allclose(layer._data_to_world.affine_matrix,
                                   image._data_to_world.affine_matrix, atol=1e-9)
    # the user sets the pixel size after a first run, then segments again
    image.scale, image.translate = (0.25, 0.25), (100, 100)
    widget.segment()
    wait_done(qtbot, widget)
    assert viewer.layers["smear cells"] is cells
    for layer in (heat, cells):
        np.testing.assert_allclose(layer._data_to_world.affine_matrix,
                                   image._data_to_world.affine_matrix, atol=1e-9)


def test_no_image_and_empty_image_give_messages(viewer, widget, notes):
    assert widget.segment() is False
    assert any("Open an image" in text for text in errors(notes))
    viewer.add_image(np.zeros((0, 5, 3), np.uint8), name="empty")
    assert widget.segment() is False
    assert any("empty" in text for text in errors(notes))
    assert names(viewer) == ["empty"]


def test_far_too_small_image_gives_a_message_not_a_traceback(qtbot, viewer, widget, notes):
    viewer.add_image(np.full((8, 8), 200, np.uint8), name="tiny")
    assert widget.segment()
    wait_done(qtbot, widget)
    assert any("smaller than one expected cell" in text for text in errors(notes))
    assert names(viewer) == ["tiny"]
    assert widget.status_label.text() == "failed"


def test_closer_look_box_reaches_the_heatmap(qtbot, viewer, widget, discs, closer_looks):
    viewer.add_image(discs, name="smear")
    assert widget.closer_check.isChecked()  # on by default, as in segment()
    widget.segment()
    wait_done(qtbot, widget)
    widget.closer_check.setChecked(False)
    widget.segment()
    wait_done(qtbot, widget)
    assert closer_looks == [True, False]
    assert n_cells(viewer.layers["smear cells"].data) == 3


def test_diameter_field_is_validated_and_passed_on(qtbot, viewer, widget, notes):
    viewer.add_image(np.full((20, 20), 200, np.uint8), name="small")
    assert "32 px" in widget.diameter_edit.placeholderText()  # the toy model's
    widget.diameter_edit.setText("abc")
    assert not widget.run_button.isEnabled()
    assert "number" in widget.diameter_edit.toolTip()
    widget.diameter_edit.setText("2")
    assert not widget.run_button.isEnabled()
    widget.diameter_edit.setText("0")
    assert widget.run_button.isEnabled()
    # 20 px is too small for 32 px cells, fine for 8 px ones: the field reaches the core
    widget.segment()
    wait_done(qtbot, widget)
    assert len(errors(notes)) == 1
    widget.diameter_edit.setText("8")
    widget.segment()
    wait_done(qtbot, widget)
    assert len(errors(notes)) == 1
    assert "small cells" in names(viewer)


def test_estimate_button_fills_the_diameter_field(qtbot, viewer, widget, notes):
    from smears import smear

    centres = [(20, 20), (20, 70), (20, 110), (70, 20), (70, 70), (70, 110)]
    planes = [smear(shape=(96, 140), centres=centres, radius=10, seed=s)[0] for s in range(3)]
    stack = (np.stack(planes) * 255).round().astype(np.uint8)
    viewer.add_image(stack[0], name="one smear", rgb=True)
    assert widget.image_layer.name == "one smear"
    assert widget.estimate_diameter()
    assert not widget.estimate_button.isEnabled()
    assert not widget.estimate_diameter()  # one estimate at a time
    qtbot.waitUntil(widget.estimate_button.isEnabled, timeout=30_000)
    assert float(widget.diameter_edit.text()) == pytest.approx(21, rel=0.1)
    assert "from 1 image: 2" in widget.status_label.text()
    assert "off by half" in widget.status_label.text()
    assert widget.run_button.isEnabled()  # the estimate is a valid diameter

    viewer.add_image(stack, name="three planes", rgb=True)
    widget.diameter_edit.setText("")
    widget.estimate_button.click()
    qtbot.waitUntil(widget.estimate_button.isEnabled, timeout=30_000)
    assert float(widget.diameter_edit.text()) == pytest.approx(21, rel=0.1)
    assert "from 3 planes" in widget.status_label.text()

    # nothing cell-like: a message, and the field keeps what the user had typed
    viewer.add_image(np.full((80, 80, 3), 220, np.uint8), name="blank", rgb=True)
    widget.diameter_edit.setText("55")
    widget.estimate_button.click()
    qtbot.waitUntil(widget.estimate_button.isEnabled, timeout=30_000)
    assert widget.diameter_edit.text() == "55"
    assert errors(notes) == [
        "Could not estimate the cell diameter of 'blank': no cell-like objects found to "
        "estimate the cell diameter; give the diameter in pixels instead"
    ]


def test_estimate_without_an_image_explains(widget, notes):
    assert not widget.estimate_diameter()
    assert errors(notes) == ["Open an image first (File > Open, or File > Open Sample)."]


def test_model_chooser(widget, tmp_path, random_model_path, notes):
    changed = []
    widget.model_changed.connect(changed.append)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    before = widget.model_name
    assert widget.set_model(bad) is False
    assert widget.model_name == before
    assert any("not a readable napari-milseg model" in text for text in errors(notes))

    assert widget.set_model(random_model_path)
    assert widget.model_name == "random.pt"
    assert "100 px" in widget.diameter_edit.placeholderText()
    assert "colours" not in widget.model_label.toolTip()
    from napari_milseg.model import load_model, save_model

    turned = load_model(random_model_path, "cpu")
    turned.colour_turn = -90.0
    assert widget.set_model(save_model(turned, tmp_path / "turned.pt"))
    assert "turns the images' colours by -90°" in widget.model_label.toolTip()
    assert widget.set_model(random_model_path)
    widget.bundled_button.click()
    assert widget.model_name.startswith("bundled")
    assert changed == ["random.pt", "turned.pt", "random.pt", widget.model_name]


def test_missing_bundled_model_is_reported(
    qtbot, viewer, widget, discs, tmp_path, monkeypatch, notes
):
    import napari_milseg.model as model

    monkeypatch.setattr(model, "bundled_model_path", lambda: tmp_path / "missing.pt")
    model._bundled.cache_clear()
    try:
        widget.set_model(None)
        assert widget.model is None
        viewer.add_image(discs, name="smear")
        widget.segment()
        wait_done(qtbot, widget)
    finally:
        model._bundled.cache_clear()
    assert any("missing.pt does not exist" in text for text in errors(notes))
    assert names(viewer) == ["smear"]


def test_real_smear_with_a_weights_file(qtbot, viewer, widget, smear, random_model_path, notes):
    # an untrained network: no claim about the cells, only that the whole path works
    assert widget.set_model(random_model_path)
    viewer.add_image(smear, name="smear")
    widget.segment()
    wait_done(qtbot, widget)
    assert errors(notes) == []
    heat = viewer.layers["smear heatmap"].data
    assert heat.shape == (480, 640) and heat.dtype == np.float32
    assert viewer.layers["smear cells"].data.shape == (480, 640)


def test_removing_the_image_mid_run_drops_the_result(qtbot, viewer, widget, discs, notes):
    image = viewer.add_image(discs, name="smear")
    widget.segment()
    viewer.layers.remove(image)
    wait_done(qtbot, widget)
    assert names(viewer) == []
    assert errors(notes) == []
    assert any("removed during segmentation" in text for _, text in notes)


def test_closing_the_dock_mid_run_stops_it_without_crashing(qtbot, viewer, discs, notes):
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment cells")
    widget.set_model(dark_model())
    viewer.add_image(discs, name="smear")
    widget.segment()
    worker = widget.worker
    viewer.window.remove_dock_widget(widget)
    # the worker's finished signal has not been delivered yet, so the run
    # still counts as going on and closing the dock asked it to stop
    assert worker.abort_requested
    # napari keeps a closed dock's widget for reopening; delete it to be harsh
    widget.deleteLater()
    qtbot.waitUntil(lambda: not worker.is_running, timeout=60_000)
    qtbot.waitUntil(lambda: not _alive(widget), timeout=5_000)
    # signals and layer events that would have reached the widget are harmless
    viewer.add_image(discs, name="another")
    viewer.layers.selection.active = viewer.layers["smear"]
    assert errors(notes) == []
    assert "another" in names(viewer)


def _alive(widget) -> bool:
    try:
        widget.objectName()
    except RuntimeError:
        return False
    return True


def test_picker_follows_image_layers(viewer, widget):
    a = viewer.add_image(np.zeros((40, 60)), name="a")
    viewer.add_image(np.zeros((40, 60)), name="b")
    assert widget.image_layer.name == "b"
    viewer.layers.selection.active = a
    assert widget.image_layer is a
    widget.show_result(a, two_blobs())
    # outputs are not offered as inputs
    items = [widget.image_picker.itemText(i) for i in range(widget.image_picker.count())]
    assert items == ["a", "b"]
    a.name = "renamed"
    items = [widget.image_picker.itemText(i) for i in range(widget.image_picker.count())]
    assert items == ["renamed", "b"]
    # the renamed image stays picked, even when it was not the first in the list
    viewer.layers.selection.active = viewer.layers["b"]
    viewer.layers["b"].name = "b2"
    assert widget.image_picker.currentText() == "b2"
    assert widget.image_layer is viewer.layers["b2"]
