"""``milseg train`` run as a user runs it: in a subprocess, on tiny synthetic smears.

One real (tiny) training run is shared by the checks on its outputs; the
error cases stop before any training starts, so they take the time of a
start-up only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_milseg.card import card_path
from napari_milseg.params import MIN_POSITIVES
from smears import smear
from test_cli import error_lines, milseg

#: Tiny run: one step per epoch on four 96x128 images with cells of 24 px.
TINY = ["--diameter", "24", "--batch-size", "4", "--crops-per-image", "1", "--from-scratch"]


def smear_png(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    centres = [(int(rng.integers(16, 80)), int(rng.integers(16, 112))) for _ in range(3)]
    image, _ = smear((96, 128), centres, radius=12, seed=seed,
                     background=(0.86, 0.84, 0.9), cell=(0.35, 0.25, 0.45))
    Image.fromarray((image * 255).astype(np.uint8)).save(path)


@pytest.fixture(scope="module")
def smears_dir(tmp_path_factory) -> Path:
    """Four smears, a text file (skipped) and a corrupt JPEG (failed)."""
    folder = tmp_path_factory.mktemp("positives")
    for i in range(4):
        smear_png(folder / f"smear{i}.png", i)
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return folder


@pytest.fixture(scope="module")
def trained(smears_dir, tmp_path_factory):
    """One tiny training run; returns (finished process, model path)."""
    out = tmp_path_factory.mktemp("out") / "models" / "lab.pt"  # folder made by train
    done = milseg("train", "--positive", smears_dir, "--epochs", "1", "--seed", "3", *TINY,
                  "--out", out)
    return done, out


def test_help_lists_the_options():
    done = milseg("train", "--help")
    assert done.returncode == 0
    for flag in ("--positive", "--negative", "--init", "--from-scratch", "--epochs",
                 "--warmup-epochs", "--lr", "--batch-size", "--crops-per-image", "--diameter",
                 "--colour-turn", "--seed", "--device", "--out", "--overwrite", "--debug"):
        assert flag in done.stdout
    assert "train" in milseg("--help").stdout


def test_train_writes_a_loadable_model_and_its_card(trained, smears_dir):
    from napari_milseg.model import load_model

    done, out = trained
    assert done.returncode == 0, done.stderr
    assert "positive images: 4 images from 4 files; 1 non-image file skipped" in done.stderr
    assert "1 file could not be read (e.g. broken.jpg" in done.stderr
    assert f"model written to {out}" in done.stderr
    assert sorted(os.listdir(out.parent)) == ["lab.json", "lab.pt"]

    model = load_model(out, "cpu")
    assert model.diameter == 24.0
    card = json.loads(card_path(out).read_text())
    assert model.card == card  # the same card inside the weights file
    assert card["made_with"] == "milseg train"
    assert card["init"] == "scratch"
    assert (card["epochs"], card["seed"], card["diameter"]) == (1, 3, 24.0)
    assert card["positive_images"] == 4
    assert card["negatives"] == "synthesized from positives"
    assert card["negative_data"] is None
    assert len(card["epoch_losses"]) == 1 and np.isfinite(card["epoch_losses"][0])
    data = card["positive_data"]
    assert data["sources"] == [str(smears_dir)]
    assert (data["files_used"], data["files_skipped"], data["files_failed"]) == (1 * 4, 1, 1)
    assert [Path(n).name for n in data["names"]] == [f"smear{i}.png" for i in range(4)]
    assert card["command"].startswith("milseg train --positive ")
    assert f"--out {out}" in card["command"]
    assert card["date"][:4].isdigit() and "T" in card["date"]
    assert 0 < card["seconds"] <= card["wall_seconds"]
    machine = card["machine"]
    assert machine["device"] == "cpu" or machine["device"].startswith("cuda")
    assert machine["torch_threads"] >= 1 and machine["cpu_count"] >= 1
    assert "interrupted_after_epoch" not in card


@pytest.mark.parametrize("turn, epochs", [("auto", "1"), ("120", "0")])
def test_fine_tuning_chooses_or_takes_a_colour_turn_the_model_keeps(smears_dir, tmp_path, turn,
                                                                     epochs):
    from napari_milseg.model import load_model

    out = tmp_path / "lab.pt"
    tiny = [a for a in TINY if a != "--from-scratch"]
    done = milseg("train", "--positive", smears_dir, "--epochs", epochs, *tiny,
                  "--colour-turn", turn, "--out", out)
    assert done.returncode == 0, done.stderr
    model = load_model(out, "cpu")
    card = json.loads(card_path(out).read_text())
    assert card["colour_turn"] == model.colour_turn
    if turn == "auto":
        # the choice is reported, with what it saw at every angle
        assert "milseg: colours " in done.stderr and "(agreement " in done.stderr
        assert len(card["colour_turn_agreement"]) == 12 and card["colour_turn_images"] == 4
    else:
        assert model.colour_turn == 120.0 and "colour_turn_agreement" not in card
        # no epoch: the bundled weights with this diameter and turn, nothing trained
        import torch

        bundled = load_model(None, "cpu").net.state_dict()
        assert all(torch.equal(v, bundled[k]) for k, v in model.net.state_dict().items())
        assert card["epochs"] == 0 and model.diameter == 24


def test_existing_model_or_card_is_not_overwritten(trained, smears_dir, tmp_path):
    _, out = trained
    before = {p: p.stat().st_mtime_ns for p in (out, card_path(out))}
    done = milseg("train", "--positive", smears_dir, *TINY, "--out", out)
    assert done.returncode == 2
    assert error_lines(done.stderr) == [
        f"milseg: error: model file {out} already exists; not overwritten "
        "(choose another --out, or pass --overwrite)"
    ]
    assert {p: p.stat().st_mtime_ns for p in before} == before
    # a card alone is protected too
    (tmp_path / "other.json").write_text("{}")
    done = milseg("train", "--positive", smears_dir, *TINY, "--out", tmp_path / "other.pt")
    assert done.returncode == 2
    assert "model card" in done.stderr and "already exists" in done.stderr
    assert not (tmp_path / "other.pt").exists()


def test_the_bundled_weights_are_refused(smears_dir):
    from napari_milseg.model import bundled_model_path

    done = milseg("train", "--positive", smears_dir, *TINY, "--out", bundled_model_path(),
                  "--overwrite")
    assert done.returncode == 2
    [line] = error_lines(done.stderr)
    assert "is the bundled model, which training never replaces" in line


def test_output_folder_is_checked_before_reading_or_training(smears_dir, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    started = time.time()
    done = milseg("train", "--positive", smears_dir, *TINY, "--out", blocker / "m.pt")
    assert done.returncode == 2
    [line] = error_lines(done.stderr)
    assert "is a file, not a folder" in line
    assert "positive images" not in done.stderr  # nothing was read
    assert time.time() - started < 60
    done = milseg("train", "--positive", smears_dir, *TINY, "--out", tmp_path / "m.json")
    assert done.returncode == 2
    assert "must not end in .json" in done.stderr


@pytest.mark.parametrize("make, expected", [
    (lambda tmp: tmp / "nowhere", "path {p} does not exist"),
    (lambda tmp: (tmp / "empty").mkdir() or tmp / "empty", "folder {p} holds no image files"),
])
def test_bad_folder_is_one_line_and_exit_2(tmp_path, make, expected):
    folder = make(tmp_path)
    done = milseg("train", "--positive", folder, *TINY, "--out", tmp_path / "m.pt")
    assert done.returncode == 2
    assert error_lines(done.stderr) == [
        "milseg: error: " + expected.format(p=folder) + (" (JPEG, PNG, TIFF, BMP)"
                                                         if "holds" in expected else "")
    ]
    assert not (tmp_path / "m.pt").exists()


def test_unreadable_files_only_say_how_many(tmp_path):
    folder = tmp_path / "junk"
    folder.mkdir()
    for name in ("a.jpg", "b.png"):
        (folder / name).write_bytes(b"no image at all")
    done = milseg("train", "--positive", folder, *TINY, "--out", tmp_path / "m.pt")
    assert done.returncode == 2
    [line] = error_lines(done.stderr)
    assert "no readable positive images" in line
    assert "2 files could not be read" in line


def test_an_image_smaller_than_a_cell_is_left_out_by_name(smears_dir, tmp_path):
    folder = tmp_path / "with_thumb"
    folder.mkdir()
    for i in range(4):
        (folder / f"s{i}.png").write_bytes((smears_dir / f"smear{i}.png").read_bytes())
    Image.fromarray(np.full((20, 20, 3), 220, np.uint8)).save(folder / "thumb.png")
    out = tmp_path / "m.pt"
    tiny = [a for a in TINY if a != "--from-scratch"]  # the colour turn looks at every image
    done = milseg("train", "--positive", folder, "--epochs", "0", *tiny, "--out", out)
    assert done.returncode == 0, done.stderr
    assert "milseg: left out 1 image smaller than one cell (24 px across): " in done.stderr
    assert "thumb.png" in done.stderr
    card = json.loads(card_path(out).read_text())
    assert card["left_out"].endswith("thumb.png") and "left_out_images" not in card


def test_too_few_images_names_the_minimum(smears_dir, tmp_path):
    few = tmp_path / "few"
    few.mkdir()
    for i in range(MIN_POSITIVES - 1):
        (few / f"s{i}.png").write_bytes((smears_dir / f"smear{i}.png").read_bytes())
    done = milseg("train", "--positive", few, *TINY, "--out", tmp_path / "m.pt")
    assert done.returncode == 2
    [line] = error_lines(done.stderr)
    assert f"at least {MIN_POSITIVES} positive images" in line
    assert f"found {MIN_POSITIVES - 1} in {few}" in line


def test_unusable_init_models(smears_dir, tmp_path):
    import torch

    from napari_milseg.model import FORMAT

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 not really a model")
    other = tmp_path / "other.pt"
    torch.save({"format": FORMAT, "arch": "unet-9000", "state_dict": {}}, other)
    for path, words in ((corrupt, "not a readable napari-milseg model"),
                        (other, "holds architecture 'unet-9000'"),
                        (tmp_path / "missing.pt", "does not exist")):
        done = milseg("train", "--positive", smears_dir, "--init", path, "--epochs", "1",
                      "--out", tmp_path / "m.pt")
        assert done.returncode == 2, done.stderr
        [line] = error_lines(done.stderr)
        assert words in line
        assert "positive images" not in done.stderr  # refused before reading the images


@pytest.mark.parametrize("device, message", [
    ("cuda", "no CUDA GPU is available here"), ("mps", "Apple MPS is not available here"),
])
def test_a_device_this_machine_lacks_exits_2(smears_dir, tmp_path, device, message):
    import torch

    from napari_milseg.model import mps_available

    if torch.cuda.is_available() if device == "cuda" else mps_available():
        pytest.skip(f"this machine has {device}")
    done = milseg("train", "--positive", smears_dir, *TINY, "--device", device,
                  "--out", tmp_path / "m.pt")
    assert done.returncode == 2, done.stderr
    assert error_lines(done.stderr) == [f"milseg: error: --device {device}: {message}"]


@pytest.mark.parametrize("args, words", [
    (["--lr", "2"], "learning_rate must be between 0 and 1"),
    (["--warmup-epochs", "5", "--epochs", "2"], "warmup_epochs must be between 0 and epochs"),
    (["--epochs", "-1"], "epochs must be a whole number of at least 0"),
    (["--epochs", "0"], "training a new network needs at least 1 epoch"),  # --from-scratch
    (["--epochs", "two"], "'two' is not a whole number"),
    (["--device", "tpu"], "must be auto, cpu, cuda"),
    (["--colour-turn", "left"], "must be an angle in degrees, 'auto' or 'keep'"),
    (["--colour-turn", "nan"], "must be an angle in degrees, 'auto' or 'keep'"),
    (["--init", "x.pt"], "not allowed with argument"),  # with --from-scratch (in TINY)
])
def test_bad_values_exit_2(smears_dir, tmp_path, args, words):
    done = milseg("train", "--positive", smears_dir, *TINY, *args, "--out", tmp_path / "m.pt")
    assert done.returncode == 2
    assert words in done.stderr
    assert not (tmp_path / "m.pt").exists()


def _run_until(args, line_has: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """Start ``milseg ARGS``, send Ctrl-C (SIGINT) once stderr shows ``line_has``."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    proc = subprocess.Popen([sys.executable, "-m", "napari_milseg", *map(str, args)],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    seen = []
    deadline = time.time() + timeout
    try:
        for line in proc.stderr:
            seen.append(line)
            if line_has in line:
                proc.send_signal(signal.SIGINT)
                break
            assert time.time() < deadline, "".join(seen)
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "".join(seen) + err)


def test_ctrl_c_keeps_the_last_finished_epoch_replacing_with_overwrite(trained, smears_dir,
                                                                       tmp_path):
    from napari_milseg.model import load_model

    out = tmp_path / "lab.pt"
    out.write_bytes(trained[1].read_bytes())  # an older model, replaced (--overwrite)
    card_path(out).write_text("{}")
    done = _run_until(["train", "--positive", smears_dir, *TINY, "--epochs", "3",
                       "--out", out, "--overwrite"], "epoch 1/3 done")
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr
    card = json.loads(card_path(out).read_text())
    k = card["interrupted_after_epoch"]
    assert 1 <= k < 3 and card["epochs"] == k and card["epochs_planned"] == 3
    assert f"interrupted: the model after epoch {k} was written to {out}" in done.stderr
    assert load_model(out, "cpu").card["interrupted_after_epoch"] == k


def test_ctrl_c_before_an_epoch_finished_saves_nothing(smears_dir, tmp_path):
    out = tmp_path / "m.pt"
    done = _run_until(["train", "--positive", smears_dir, *TINY, "--epochs", "2", "--out", out],
                      "positive images:")
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr
    assert "nothing was saved" in done.stderr
    assert not out.exists() and not card_path(out).exists()
