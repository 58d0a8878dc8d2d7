"""The Fine-tune model dock widget on a real headless viewer, with tiny training runs.

The runs train a seeded, untrained network on four 96x128 synthetic smears
for one to three one- or two-step epochs: they check the plumbing (reading,
the worker, cancel, saving, handing the model to Segment cells), not what
the network learns.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_milseg._finetune_widget import START_ACTIVE, START_BUNDLED, START_FILE
from napari_milseg.card import card_path
from napari_milseg.params import MIN_POSITIVES
from smears import smear

#: One step per epoch: four images, one crop each, batch of four.
TINY = {"batch_size": 4, "crops_per_image": 1}


def smear_image(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = [(int(rng.integers(16, 80)), int(rng.integers(16, 112))) for _ in range(3)]
    image, _ = smear((96, 128), centres, radius=12, seed=seed,
                     background=(0.86, 0.84, 0.9), cell=(0.35, 0.25, 0.45))
    return (image * 255).astype(np.uint8)


def errors(notes) -> list[str]:
    return [text for severity, text in notes if severity == "error"]


@pytest.fixture
def positives(tmp_path) -> Path:
    """Three smears and a file that is not an image (the fourth positive is a layer)."""
    folder = tmp_path / "pos"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(smear_image(i)).save(folder / f"s{i}.png")
    (folder / "readme.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def start_file(tmp_path_factory) -> Path:
    """An untrained, seeded network saved to disk, to fine-tune from."""
    from napari_milseg.model import new_model, save_model

    path = tmp_path_factory.mktemp("start") / "start.pt"
    return save_model(new_model(diameter=24, device="cpu", seed=0), path)


@pytest.fixture
def docks(viewer):
    """(Fine-tune widget, Segment cells widget), both docked from the plugin manifest."""
    _, tune = viewer.window.add_plugin_dock_widget("napari-milseg", "Fine-tune model")
    _, seg = viewer.window.add_plugin_dock_widget("napari-milseg", "Segment cells")
    return tune, seg


def fill(tune, positives: Path | str, out: Path, epochs: int = 1) -> None:
    tune.positive_edit.setText(str(positives))
    tune.epochs_spin.setValue(epochs)
    tune.diameter_edit.setText("24")
    tune.out_edit.setText(str(out))
    tune.advanced = dict(TINY, device="cpu")


def wait_done(qtbot, tune, timeout: int = 180_000) -> None:
    qtbot.waitUntil(lambda: not tune.running, timeout=timeout)


def test_widget_is_in_the_manifest_and_starts_empty(docks):
    tune, _ = docks
    assert type(tune).__name__ == "FinetuneWidget"
    assert tune.epochs_spin.value() == 10
    assert tune.lr_edit.text() == "" and tune.diameter_edit.text() == ""
    assert tune.start_combo.currentText() == START_ACTIVE
    assert not tune.run_button.isEnabled()  # nothing chosen yet
    assert "positive" in tune.run_button.toolTip()


def test_fine_tune_saves_card_and_activates_the_model(qtbot, viewer, docks, positives,
                                                      start_file, tmp_path, notes):
    from napari_milseg._widget import BUNDLED_LABEL
    from napari_milseg.model import load_model

    tune, seg = docks
    assert seg.set_model(start_file)  # fine-tune the active model
    viewer.add_image(smear_image(7), name="my smear")
    tune.use_layers.setChecked(True)  # ticks every image layer
    out = tmp_path / "models" / "mylab.pt"
    fill(tune, positives, out)
    assert tune.run_button.isEnabled(), tune.run_button.toolTip()

    losses = []
    assert tune.start()
    assert tune.running and tune.run_button.text() == "Cancel"
    tune.worker.yielded.connect(
        lambda r: "loss" in r.info and "epoch_done" not in r.info and losses.append(r.info["loss"])
    )
    wait_done(qtbot, tune)

    assert errors(notes) == []
    assert tune.saved_path == out
    model = load_model(out, "cpu")
    card = json.loads(card_path(out).read_text())
    assert model.card == card
    assert card["made_with"] == "napari Fine-tune panel"
    assert card["init"] == "start.pt"
    assert card["epochs"] == 1 and card["diameter"] == 24.0
    assert card["positive_images"] == 4
    # "stain colour" is ticked: a turn was chosen from the starting model's cells
    assert card["colour_turn"] == model.colour_turn
    assert len(card["colour_turn_agreement"]) == 12
    data = card["positive_data"]
    assert data["sources"] == [str(positives), "open image layers"]
    assert data["names"][-1] == "layer:my smear"
    assert (data["files_used"], data["files_skipped"]) == (4, 1)
    assert card["command"] is None  # open layers: no command-line equivalent
    assert card["machine"]["torch_threads"] >= 1

    # the live read-outs
    assert losses and tune.loss_plot.steps == losses
    assert len(tune.loss_plot.epochs) == 1
    assert tune.progress_bar.value() == tune.progress_bar.maximum()
    assert "saved the fine-tuned model" in tune.status_label.text()
    # what it trained on, and the file it passed over, are shown
    assert "4 images from 4 files; 1 non-image file skipped" in tune.status_label.text()
    assert any("now the active model" in text for _, text in notes)

    # Segment cells now uses it, and can go back to the bundled one
    assert seg.model_name == "mylab.pt"
    assert seg.model.source == str(out)
    seg.bundled_button.click()
    assert seg.model_name == BUNDLED_LABEL and seg.model is None


def test_the_card_has_the_equivalent_command(qtbot, docks, positives, start_file, tmp_path):
    tune, _ = docks
    for i in range(3, 5):
        Image.fromarray(smear_image(i)).save(positives / f"s{i}.png")
    tune.start_combo.setCurrentText(START_FILE)
    tune.init_edit.setText(str(start_file))
    tune.lr_edit.setText("5e-4")
    out = tmp_path / "m.pt"
    fill(tune, positives, out)
    assert tune.start()
    wait_done(qtbot, tune)
    card = json.loads(card_path(out).read_text())
    assert card["learning_rate"] == 5e-4
    assert card["command"] == (
        f"milseg train --positive {positives} --init {start_file} --epochs 1 --lr 0.0005 "
        f"--diameter 24 --batch-size 4 --crops-per-image 1 --device cpu --seed 0 --out {out}"
    )


def test_zero_epochs_adapts_the_model_without_training(qtbot, docks, positives, tmp_path,
                                                       notes):
    import torch

    from napari_milseg.model import load_model

    tune, seg = docks
    Image.fromarray(smear_image(3)).save(positives / "s3.png")
    tune.start_combo.setCurrentText(START_BUNDLED)
    tune.colour_box.setChecked(False)
    out = tmp_path / "adapted.pt"
    fill(tune, positives, out, epochs=0)
    assert tune.epochs_spin.value() == 0 and tune.run_button.isEnabled()
    assert tune.start()
    wait_done(qtbot, tune)
    assert errors(notes) == []
    model = load_model(out, "cpu")
    card = json.loads(card_path(out).read_text())
    assert card["epochs"] == 0 and model.diameter == 24 and model.colour_turn == 0
    assert card["command"] == (
        f"milseg train --positive {positives} --epochs 0 --diameter 24 --batch-size 4 "
        f"--crops-per-image 1 --device cpu --colour-turn keep --seed 0 --out {out}"
    )
    bundled = load_model(None, "cpu").net.state_dict()
    assert all(torch.equal(v, bundled[k]) for k, v in model.net.state_dict().items())
    assert "adapted to positive: 4 images" in tune.status_label.text()
    assert seg.model_name == "adapted.pt"


def test_an_image_smaller_than_a_cell_is_a_warning_naming_it(qtbot, docks, positives,
                                                              tmp_path, notes):
    tune, _ = docks
    Image.fromarray(smear_image(3)).save(positives / "s3.png")
    Image.fromarray(np.full((20, 20, 3), 220, np.uint8)).save(positives / "thumb.png")
    tune.start_combo.setCurrentText(START_BUNDLED)  # the colour turn looks at every image
    out = tmp_path / "adapted.pt"
    fill(tune, positives, out, epochs=0)
    assert tune.start()
    wait_done(qtbot, tune)
    assert errors(notes) == [] and out.exists()
    warnings = [text for severity, text in notes if severity == "warning"]
    assert any("left out 1 image smaller than one cell" in text and "thumb.png" in text
               for text in warnings), notes


def test_cancel_keeps_the_last_good_epoch(qtbot, docks, positives, start_file, tmp_path, notes):
    tune, seg = docks
    Image.fromarray(smear_image(3)).save(positives / "s3.png")
    tune.start_combo.setCurrentText(START_FILE)
    tune.init_edit.setText(str(start_file))
    out = tmp_path / "cancelled.pt"
    fill(tune, positives, out, epochs=3)
    tune.advanced = {"batch_size": 2, "crops_per_image": 1, "device": "cpu"}  # 2 steps/epoch

    def on_report(report):
        if report.info.get("epoch_done"):
            tune.cancel()

    assert tune.start()
    tune.worker.yielded.connect(on_report)
    wait_done(qtbot, tune)

    assert errors(notes) == []
    assert not out.exists()  # nothing is saved without asking
    k = tune.last_good_epoch
    assert 1 <= k < 3
    assert tune.has_unsaved_model
    assert tune.keep_button.isVisibleTo(tune)
    assert f"after epoch {k}" in tune.keep_button.text()
    assert f"cancelled after epoch {k} of 3" in tune.status_label.text()
    assert tune.run_button.text() == "Fine-tune" and tune.run_button.isEnabled()

    saved = tune.keep_last_good()
    assert saved == out
    card = json.loads(card_path(out).read_text())
    assert card["interrupted_after_epoch"] == k == card["epochs"]
    assert card["epochs_planned"] == 3
    assert seg.model_name == "cancelled.pt"
    assert not tune.has_unsaved_model and not tune.keep_button.isVisibleTo(tune)


@pytest.mark.parametrize("case", ["missing", "empty", "unreadable", "too few"])
def test_bad_positive_folder_is_a_notification(qtbot, docks, tmp_path, notes, case):
    tune, _ = docks
    folder = tmp_path / "pos"
    if case != "missing":
        folder.mkdir()
    if case == "unreadable":
        for name in ("a.jpg", "b.png"):
            (folder / name).write_bytes(b"no image here")
    if case == "too few":
        for i in range(MIN_POSITIVES - 1):
            Image.fromarray(smear_image(i)).save(folder / f"s{i}.png")
    fill(tune, folder, tmp_path / "m.pt")
    assert tune.start()
    wait_done(qtbot, tune, 60_000)
    [message] = errors(notes)
    expected = {
        "missing": f"path {folder} does not exist",
        "empty": f"folder {folder} holds no image files",
        "unreadable": "2 files could not be read",
        "too few": f"at least {MIN_POSITIVES} positive images",
    }[case]
    assert expected in message
    assert "Traceback" not in message
    assert tune.status_label.text().startswith("failed: ")
    assert not (tmp_path / "m.pt").exists()
    assert not tune.has_unsaved_model


def test_unusable_start_model_is_a_notification(qtbot, docks, positives, tmp_path, notes):
    tune, _ = docks
    Image.fromarray(smear_image(3)).save(positives / "s3.png")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"garbage, not weights")
    tune.start_combo.setCurrentText(START_FILE)
    tune.init_edit.setText(str(corrupt))
    fill(tune, positives, tmp_path / "m.pt")
    assert tune.start()
    wait_done(qtbot, tune, 60_000)
    [message] = errors(notes)
    assert "not a readable napari-milseg model" in message


def test_missing_bundled_model_is_a_notification(qtbot, docks, positives, tmp_path, notes):
    from napari_milseg.model import bundled_model_path

    if bundled_model_path().exists():
        pytest.skip("the bundled model is installed")
    tune, _ = docks
    Image.fromarray(smear_image(3)).save(positives / "s3.png")
    tune.start_combo.setCurrentText(START_BUNDLED)
    fill(tune, positives, tmp_path / "m.pt")
    assert tune.start()
    wait_done(qtbot, tune, 60_000)
    [message] = errors(notes)
    assert "does not exist" in message


def test_destination_is_checked_before_starting(docks, positives, tmp_path, notes,
                                                monkeypatch):
    from napari_milseg.model import bundled_model_path

    tune, _ = docks
    fill(tune, positives, bundled_model_path())
    assert not tune.run_button.isEnabled()
    assert "bundled model" in tune.out_edit.toolTip()
    assert not tune.start()
    assert "bundled model" in errors(notes)[-1]

    existing = tmp_path / "old.pt"
    existing.write_bytes(b"old")
    fill(tune, positives, existing)
    assert tune.run_button.isEnabled()
    asked = []
    monkeypatch.setattr(tune, "_confirm_overwrite", lambda paths: asked.append(paths) or False)
    assert not tune.start()  # the user said no
    assert asked == [[existing]]
    assert existing.read_bytes() == b"old" and not tune.running

    blocked = tmp_path / "a-file"
    blocked.write_text("x")
    fill(tune, positives, blocked / "m.pt")
    assert not tune.start()
    assert "is a file, not a folder" in errors(notes)[-1]


def test_live_validation_marks_bad_fields(docks, positives, tmp_path):
    tune, _ = docks
    fill(tune, positives, tmp_path / "m.pt")
    assert tune.run_button.isEnabled()
    tune.lr_edit.setText("fast")
    assert not tune.run_button.isEnabled()
    assert "learning rate" in tune.lr_edit.toolTip()
    assert tune.lr_edit.styleSheet()
    tune.lr_edit.setText("1e-4")
    assert tune.run_button.isEnabled() and tune.lr_edit.styleSheet() == ""
    assert tune.params().learning_rate == 1e-4
    tune.diameter_edit.setText("2")
    assert not tune.run_button.isEnabled()
    tune.diameter_edit.setText("")
    assert tune.params().diameter is None  # estimated from the images
    assert tune.params().colour_turn == "auto"
    tune.colour_box.setChecked(False)
    assert tune.params().colour_turn == "keep"
    tune.start_combo.setCurrentText(START_FILE)
    assert not tune.run_button.isEnabled()  # no file chosen
    tune.start_combo.setCurrentText(START_BUNDLED)
    tune.out_edit.setText(str(tmp_path / "card.json"))
    assert not tune.run_button.isEnabled()


def test_layer_list_follows_the_viewer(viewer, docks):
    tune, _ = docks
    viewer.add_image(smear_image(0), name="a")
    viewer.add_image(smear_image(1), name="b")
    viewer.add_labels(np.zeros((4, 4), np.int32), name="not an image")
    items = [tune.layers_list.item(i).text() for i in range(tune.layers_list.count())]
    assert items == ["a", "b"]
    assert not tune.layers_list.isEnabled()
    tune.use_layers.setChecked(True)
    assert tune._all_checked() == ["a", "b"]
    viewer.layers.remove("a")
    assert [tune.layers_list.item(i).text() for i in range(tune.layers_list.count())] == ["b"]
    assert tune._all_checked() == ["b"]
    viewer.layers["b"].name = "b2"  # a renamed layer keeps its tick
    assert tune._all_checked() == ["b2"]


def _start_long_run(qtbot, tune, positives, start_file, out):
    """Start a 50-epoch run and wait until its first training step is done."""
    Image.fromarray(smear_image(3)).save(positives / "s3.png")
    tune.start_combo.setCurrentText(START_FILE)
    tune.init_edit.setText(str(start_file))
    fill(tune, positives, out, epochs=50)
    steps = []
    assert tune.start()
    worker = tune.worker
    worker.yielded.connect(lambda r: "loss" in r.info and steps.append(r))
    qtbot.waitUntil(lambda: bool(steps), timeout=120_000)
    return worker


def test_closing_the_dock_mid_run_stops_training(qtbot, viewer, docks, positives, start_file,
                                                 tmp_path):
    tune, _ = docks
    out = tmp_path / "m.pt"
    worker = _start_long_run(qtbot, tune, positives, start_file, out)
    viewer.window.remove_dock_widget(tune)
    qtbot.waitUntil(lambda: not worker.is_running, timeout=120_000)
    assert worker.abort_requested
    assert not out.exists()


def test_closing_the_viewer_mid_run_stops_training(qtbot, viewer, docks, positives, start_file,
                                                   tmp_path):
    tune, _ = docks
    out = tmp_path / "m.pt"
    worker = _start_long_run(qtbot, tune, positives, start_file, out)
    viewer.close()
    qtbot.waitUntil(lambda: not worker.is_running, timeout=120_000)
    assert worker.abort_requested
    assert not out.exists()
