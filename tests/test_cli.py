"""Tests for the ``milseg`` command line, run as a user runs it: in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

import napari_milseg
from napari_milseg.io import read_counts

# an untrained network's heatmap sits near 0.5: thresholds close to it give cells
THRESHOLDS = ["--inner", "0.53", "--outer", "0.51"]


def milseg(*args, check_traceback: bool = True, env=None) -> subprocess.CompletedProcess:
    """Run ``python -m napari_milseg ARGS`` and return the finished process."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning", **(env or {})}
    done = subprocess.run(
        [sys.executable, "-m", "napari_milseg", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    if check_traceback and "--debug" not in args:
        assert "Traceback" not in done.stderr, done.stderr
    return done


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("milseg: error:")]


def synthetic(seed: int, shape=(120, 160)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (*shape, 3), dtype=np.uint8)


@pytest.fixture
def three_images(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(synthetic(1)).save(folder / "a.png")
    Image.fromarray(synthetic(2)[..., 0]).save(folder / "b.png")
    tifffile.imwrite(folder / "c.tif", synthetic(3).astype(np.uint16) * 200)
    return folder


def label_counts(out: Path, stem: str) -> int:
    labels = tifffile.imread(out / f"{stem}_labels.tif")
    return len(np.unique(labels)) - 1


def test_help_version_and_missing_command():
    done = milseg("--help")
    assert done.returncode == 0
    assert "segment" in done.stdout
    done = milseg("segment", "--help")
    assert done.returncode == 0
    for flag in ("--out", "--inner", "--outer", "--model", "--diameter", "--overwrite",
                 "--workers", "--scheduler", "--debug"):
        assert flag in done.stdout
    done = milseg("--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"milseg {napari_milseg.__version__}")
    done = milseg()
    assert done.returncode == 2
    assert "required: COMMAND" in done.stderr


def test_console_script_is_the_same_command():
    script = shutil.which("milseg", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("the milseg console script is not installed next to this Python")
    done = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, f"milseg {napari_milseg.__version__}")


def test_segment_a_real_smear_and_resume(tmp_path, smear, random_model_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(smear).save(inputs / "smear.jpg", quality=95)
    Image.fromarray(synthetic(0)).save(inputs / "synthetic.png")
    out = tmp_path / "out"

    done = milseg("segment", inputs, "--out", out, "--model", random_model_path, *THRESHOLDS)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(out)) == [
        "counts.csv", "smear_heatmap.tif", "smear_labels.tif",
        "synthetic_heatmap.tif", "synthetic_labels.tif",
    ]
    assert "2 image(s) segmented" in done.stderr
    # the files hold what the Python API computes
    image = np.asarray(Image.open(inputs / "smear.jpg"))
    expected = napari_milseg.segment(image, 0.53, 0.51, model=random_model_path)
    labels = tifffile.imread(out / "smear_labels.tif")
    heatmap = tifffile.imread(out / "smear_heatmap.tif")
    assert labels.dtype == np.uint16
    assert heatmap.dtype == np.float32
    assert labels.shape == heatmap.shape == (480, 640)
    np.testing.assert_array_equal(labels, expected.labels)
    np.testing.assert_allclose(heatmap, expected.heatmap, atol=1e-6)
    assert expected.count > 0
    counts = read_counts(out / "counts.csv").rows
    assert counts == {
        "smear.jpg": expected.count,
        "synthetic.png": label_counts(out, "synthetic"),
    }
    csv_text = (out / "counts.csv").read_text()

    # run again: nothing is redone, nothing is rewritten, the counts stay
    stamps = {name: (out / name).stat().st_mtime_ns for name in os.listdir(out)}
    done = milseg("segment", inputs, "--out", out, "--model", random_model_path, *THRESHOLDS)
    assert done.returncode == 0, done.stderr
    assert "0 image(s) segmented, 2 already done" in done.stderr
    assert {name: (out / name).stat().st_mtime_ns for name in os.listdir(out)} == stamps

    # counts.csv lost: it is rebuilt from the labels files
    (out / "counts.csv").unlink()
    done = milseg("segment", inputs, "--out", out, "--model", random_model_path, *THRESHOLDS)
    assert done.returncode == 0, done.stderr
    assert (out / "counts.csv").read_text() == csv_text

    # --overwrite redoes them, here with other thresholds
    done = milseg("segment", inputs, "--out", out, "--model", random_model_path,
                  "--inner", "0.54", "--outer", "0.52", "--overwrite")
    assert done.returncode == 0, done.stderr
    assert "2 image(s) segmented" in done.stderr
    redone = napari_milseg.label_cells(expected.heatmap, 0.54, 0.52)
    np.testing.assert_array_equal(tifffile.imread(out / "smear_labels.tif"), redone)
    assert read_counts(out / "counts.csv").rows["smear.jpg"] == int(redone.max())


def test_bad_files_are_reported_in_one_line_and_skipped(tmp_path, random_model_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(synthetic(0)).save(inputs / "good.png")
    Image.fromarray(synthetic(1)).save(inputs / "cut.jpg")
    data = (inputs / "cut.jpg").read_bytes()
    (inputs / "cut.jpg").write_bytes(data[: len(data) // 2])
    (inputs / "text.png").write_text("not an image")
    Image.fromarray(synthetic(2)[:20, :20]).save(inputs / "tiny.png")
    (inputs / "notes.txt").write_text("a note")
    missing = tmp_path / "missing.jpg"
    out = tmp_path / "out"

    done = milseg("segment", inputs, missing, "--out", out, "--model", random_model_path)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert f"milseg: {inputs / 'cut.jpg'}: skipped: corrupt or truncated JPEG file" in (
        "\n".join(lines)
    )
    for name, reason in [
        (inputs / "cut.jpg", "corrupt or truncated JPEG file"),
        (inputs / "text.png", "not an image"),
        (inputs / "tiny.png", "smaller than one expected cell"),
        (missing, "file does not exist"),
    ]:
        matching = [line for line in lines if line.startswith(f"milseg: {name}: skipped:")]
        assert len(matching) == 1, done.stderr
        assert reason in matching[0]
    assert "skipped 1 non-image file(s) in the input folders (e.g. notes.txt)" in done.stderr
    assert "1 image(s) segmented, 4 failed" in done.stderr
    assert list(read_counts(out / "counts.csv").rows) == ["good.png"]
    assert sorted(os.listdir(out)) == ["counts.csv", "good_heatmap.tif", "good_labels.tif"]


def test_nothing_processed_exits_1(tmp_path, random_model_path):
    (tmp_path / "bad.png").write_text("x")
    done = milseg("segment", tmp_path / "bad.png", "--out", tmp_path / "out",
                  "--model", random_model_path)
    assert done.returncode == 1
    assert "0 image(s) segmented, 1 failed" in done.stderr
    assert os.listdir(tmp_path / "out") == []

    empty = tmp_path / "empty"
    empty.mkdir()
    done = milseg("segment", empty, "--out", tmp_path / "out2")
    assert done.returncode == 1
    assert error_lines(done.stderr) == [f"milseg: error: no image files found in {empty}"]


def _other_architecture(path: Path) -> None:
    import torch

    from napari_milseg.model import FORMAT

    torch.save({"format": FORMAT, "arch": "unet-v7", "state_dict": {}}, path)


def _plain_checkpoint(path: Path) -> None:
    import torch

    torch.save({"conv.weight": torch.zeros(3, 3)}, path)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: p.write_bytes(b"\x00garbage" * 10), "not a readable napari-milseg model"),
        (_other_architecture, "holds architecture 'unet-v7'"),
        (_plain_checkpoint, "not a napari-milseg model file"),
        (lambda p: None, "does not exist"),
    ],
)
def test_unusable_model_exits_2_with_one_line(tmp_path, three_images, make, match):
    model = tmp_path / "model.pt"
    make(model)
    out = tmp_path / "out"
    done = milseg("segment", three_images, "--out", out, "--model", model)
    assert done.returncode == 2
    errors = error_lines(done.stderr)
    assert len(errors) == 1, done.stderr
    assert match in errors[0] and str(model) in errors[0]
    assert os.listdir(out) == []


def test_debug_shows_the_traceback(tmp_path, three_images):
    model = tmp_path / "model.pt"
    model.write_bytes(b"junk")
    done = milseg("segment", three_images, "--out", tmp_path / "o", "--model", model, "--debug")
    assert done.returncode == 2
    assert "Traceback" in done.stderr
    assert "ModelError" in done.stderr


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--inner", "0.4", "--outer", "0.5"], "outer (0.5) must be below inner (0.4)"),
        (["--inner", "1.5"], "inner must lie strictly between 0 and 1"),
        (["--inner", "abc"], "argument --inner: 'abc' is not a number"),
        (["--diameter", "-3"], "argument --diameter: must be a positive number"),
        (["--diameter", "2"], "diameter 2.0 px is too small"),
        (["--diameter", "big"], "--diameter: must be a positive number of pixels or 'auto'"),
        (["--diameter", "keep"], "--diameter: must be a positive number of pixels or 'auto'"),
        (["--workers", "0"], "argument --workers: must be at least 1"),
        (["--workers", "2", "--scheduler", "tcp://x:1"], "not allowed with argument"),
    ],
)
def test_bad_arguments_exit_2(tmp_path, three_images, args, match):
    done = milseg("segment", three_images, "--out", tmp_path / "out", *args)
    assert done.returncode == 2
    assert match in done.stderr
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []


@pytest.mark.parametrize("command", ["segment", "train"])
def test_an_empty_out_is_refused(tmp_path, three_images, command, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where an empty path would have written
    inputs = [three_images] if command == "segment" else ["--positive", three_images]
    done = milseg(command, *inputs, "--out", "")
    assert done.returncode == 2
    assert "argument --out/-o: an empty path names no file or folder" in done.stderr
    assert os.listdir(tmp_path) == ["in"]  # nothing written beside the inputs


def test_output_folder_that_is_a_file_exits_2(tmp_path, three_images):
    target = tmp_path / "out"
    target.write_text("I am a file")
    done = milseg("segment", three_images, "--out", target)
    assert done.returncode == 2
    assert error_lines(done.stderr) == [
        f"milseg: error: output folder {target} is a file, not a folder"
    ]
    assert target.read_text() == "I am a file"


def test_foreign_counts_file_is_not_replaced(tmp_path, three_images):
    out = tmp_path / "out"
    out.mkdir()
    (out / "counts.csv").write_text("sample,area\nx,1\n")
    done = milseg("segment", three_images, "--out", out)
    assert done.returncode == 2
    assert "is not a counts file" in done.stderr
    assert os.listdir(out) == ["counts.csv"]
    assert (out / "counts.csv").read_text() == "sample,area\nx,1\n"


def test_stack_is_counted_plane_by_plane(tmp_path, random_model_path):
    stack = np.stack([synthetic(i) for i in range(3)])
    tifffile.imwrite(tmp_path / "movie.tif", stack, photometric="rgb")
    out = tmp_path / "out"
    done = milseg("segment", tmp_path / "movie.tif", "--out", out, "--model", random_model_path,
                  *THRESHOLDS)
    assert done.returncode == 0, done.stderr
    labels = tifffile.imread(out / "movie_labels.tif")
    assert labels.shape == (3, 120, 160)
    assert tifffile.imread(out / "movie_heatmap.tif").shape == (3, 120, 160)
    expected = [len(np.unique(plane)) - 1 for plane in labels]
    assert list(read_counts(out / "counts.csv").rows.items()) == [
        (f"movie.tif[{i}]", expected[i]) for i in range(3)
    ]
    np.testing.assert_array_equal(
        labels[1], napari_milseg.segment(stack[1], 0.53, 0.51, model=random_model_path).labels
    )


def test_diameter_reaches_the_core(tmp_path, three_images, random_model_path):
    # the images are 120 px high: cells of 130 px cannot fit, cells of 60 px can
    done = milseg("segment", three_images, "--out", tmp_path / "big", "--model",
                  random_model_path, "--diameter", "130")
    assert done.returncode == 1
    assert done.stderr.count("is smaller than one expected cell (130 px across)") == 3
    done = milseg("segment", three_images, "--out", tmp_path / "small", "--model",
                  random_model_path, "--diameter", "60")
    assert done.returncode == 0, done.stderr
    assert "3 image(s) segmented" in done.stderr


def test_closer_look_reaches_the_core_and_the_outputs_say_so(tmp_path, three_images,
                                                            random_model_path):
    from napari_milseg.io import read_tiff_metadata

    for flag, out, closer, joined in (([], tmp_path / "default", True, False),
                                      (["--no-closer-look"], tmp_path / "plain", False, False),
                                      (["--closer-look", "--split-joined"], tmp_path / "closer",
                                       True, True)):
        done = milseg("segment", three_images, "--out", out, "--model", random_model_path,
                      "--diameter", "60", *flag)
        assert done.returncode == 0, done.stderr
        written = sorted(out.glob("*_labels.tif"))
        assert len(written) == 3
        for labels in written:
            made_with = read_tiff_metadata(labels)
            assert made_with["closer_look"] is closer
            assert made_with["split_joined"] is joined


def test_diameter_auto_is_estimated_once_for_the_batch(tmp_path, random_model_path):
    from napari_milseg.io import read_tiff_metadata
    from smears import smear

    folder = tmp_path / "in"
    folder.mkdir()
    centres = [(y, x) for y in (40, 130) for x in (40, 130, 220)]
    for seed in range(3):
        rgb, _ = smear(shape=(170, 260), centres=centres, radius=20, seed=seed)
        Image.fromarray((rgb * 255).round().astype(np.uint8)).save(folder / f"s{seed}.png")
    (folder / "broken.png").write_bytes(b"not a picture")
    out = tmp_path / "out"
    done = milseg("segment", folder, "--out", out, "--model", random_model_path,
                  "--diameter", "auto")
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stderr.splitlines() if "estimated cell diameter" in x)
    assert "from 3 image file(s)" in line and "off by half" in line
    estimate = float(line.split("estimated cell diameter: ")[1].split(" px")[0])
    assert estimate == pytest.approx(41, rel=0.1)
    # every image was segmented with that one diameter, and the outputs say so
    for seed in range(3):
        made_with = read_tiff_metadata(out / f"s{seed}_labels.tif")
        assert made_with["diameter"] == pytest.approx(estimate, abs=0.5)
    assert "broken.png: skipped" in done.stderr


def test_diameter_auto_without_cells_exits_1(tmp_path, random_model_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.full((120, 160, 3), 220, np.uint8)).save(folder / "blank.png")
    done = milseg("segment", folder, "--out", tmp_path / "out", "--model", random_model_path,
                  "--diameter", "auto")
    assert done.returncode == 1
    assert error_lines(done.stderr) == [
        "milseg: error: --diameter auto: no cell-like objects found to estimate the cell "
        "diameter; give the diameter in pixels instead"
    ]


@pytest.fixture(scope="module")
def single_process_run(tmp_path_factory, random_model_path):
    """Three small images segmented in one process: the reference for parallel runs."""
    root = tmp_path_factory.mktemp("parallel")
    inputs = root / "in"
    inputs.mkdir()
    for i in range(3):
        Image.fromarray(synthetic(10 + i)).save(inputs / f"img{i}.png")
    out = root / "single"
    done = milseg("segment", inputs, "--out", out, "--model", random_model_path, *THRESHOLDS)
    assert done.returncode == 0, done.stderr
    return inputs, out


def assert_same_outputs(first: Path, second: Path) -> None:
    """The same labels and counts; the same heatmaps up to float rounding.

    Local workers run torch with fewer threads each, and on some CPUs
    oneDNN's convolutions then round differently (seen: 6e-8 apart on an
    x86_64 CPU with AMX, identical on others).
    """
    names = sorted(os.listdir(first))
    assert sorted(os.listdir(second)) == names
    for name in names:
        if name.endswith("_heatmap.tif"):
            np.testing.assert_allclose(
                tifffile.imread(first / name), tifffile.imread(second / name),
                rtol=0, atol=1e-6, err_msg=name,
            )
        elif name.endswith(".tif"):
            np.testing.assert_array_equal(
                tifffile.imread(first / name), tifffile.imread(second / name), err_msg=name
            )
    assert (first / "counts.csv").read_text() == (second / "counts.csv").read_text()


def test_two_local_workers_give_the_single_process_result(
    tmp_path, single_process_run, random_model_path
):
    inputs, reference = single_process_run
    out = tmp_path / "workers"
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    done = milseg("segment", inputs, bad, "--out", out, "--model", random_model_path,
                  *THRESHOLDS, "--workers", "2")
    assert done.returncode == 0, done.stderr
    assert "3 image(s) segmented, 1 failed" in done.stderr
    assert f"milseg: {bad}: skipped: not an image" in done.stderr
    assert_same_outputs(reference, out)


def test_dask_scheduler_gives_the_single_process_result(
    tmp_path, single_process_run, random_model_path
):
    distributed = pytest.importorskip("distributed")
    inputs, reference = single_process_run
    out = tmp_path / "dask"
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
        dashboard_address=None,
    ) as cluster:
        done = milseg("segment", inputs, "--out", out, "--model", random_model_path,
                      *THRESHOLDS, "--scheduler", cluster.scheduler_address)
    assert done.returncode == 0, done.stderr
    assert_same_outputs(reference, out)


def test_unreachable_scheduler_exits_2(tmp_path, three_images, random_model_path):
    pytest.importorskip("distributed")
    done = milseg("segment", three_images, "--out", tmp_path / "o", "--model", random_model_path,
                  "--scheduler", "tcp://127.0.0.1:9",
                  env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"})
    assert done.returncode == 2
    assert len(error_lines(done.stderr)) == 1, done.stderr
    assert "cannot reach the dask scheduler at tcp://127.0.0.1:9" in error_lines(done.stderr)[0]


def test_a_malformed_scheduler_address_exits_2_at_once(tmp_path, three_images, random_model_path):
    pytest.importorskip("distributed")
    done = milseg("segment", three_images, "--out", tmp_path / "o", "--model", random_model_path,
                  "--scheduler", "notanaddress")
    assert done.returncode == 2
    assert error_lines(done.stderr) == [
        "milseg: error: 'notanaddress' is not a dask scheduler address (e.g. tcp://host:8786): "
        "missing port number in address 'notanaddress'"
    ], done.stderr
    out = tmp_path / "o"
    assert "Traceback" not in done.stderr and not (out.exists() and os.listdir(out))
