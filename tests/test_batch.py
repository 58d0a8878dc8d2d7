"""Tests for napari_milseg.batch: per-file outputs, resume, merging counts, bad files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_milseg import SegmentParams, segment
from napari_milseg.batch import (
    DONE,
    FAILED,
    RESUMED,
    count_cells,
    output_paths,
    plane_names,
    segment_file,
    segment_file_steps,
    segment_files_steps,
)
from napari_milseg.io import read_counts, read_tiff_metadata
from napari_milseg.progress import run
from toy_model import dark_model, disc_image

PARAMS = SegmentParams()


@pytest.fixture(scope="module")
def toy():
    return dark_model()


def save(path, image):
    if path.suffix == ".tif":
        tifffile.imwrite(path, image)
    else:
        Image.fromarray(image).save(path)
    return path


def discs(n: int) -> np.ndarray:
    centres = [(40, 40), (40, 120), (100, 80), (100, 140)][:n]
    return disc_image((140, 170), centres, 16)


@pytest.fixture
def folder(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    save(inputs / "one.png", discs(1))
    save(inputs / "three.png", discs(3))
    save(inputs / "two.tif", discs(2))
    out = tmp_path / "out"
    out.mkdir()
    return inputs, out


def test_plane_names_and_count_cells():
    assert plane_names("a.png", ()) == ["a.png"]
    assert plane_names("s.tif", (3,)) == ["s.tif[0]", "s.tif[1]", "s.tif[2]"]
    labels = np.array([[[0, 1, 1], [5, 0, 0]], [[0, 0, 0], [0, 0, 0]], [[2, 2, 2], [2, 2, 2]]])
    assert count_cells(labels) == [2, 0, 1]
    assert count_cells(labels[0]) == [2]


def test_segment_file_writes_labels_heatmap_and_counts(folder, toy):
    inputs, out = folder
    result = run(segment_file_steps(inputs / "three.png", out, PARAMS, toy))
    assert (result.status, result.counts, result.message) == (DONE, (("three.png", 3),), "")
    labels_path, heatmap_path = output_paths(inputs / "three.png", out)
    assert sorted(os.listdir(out)) == ["three_heatmap.tif", "three_labels.tif"]
    expected = segment(discs(3), model=toy)
    labels = tifffile.imread(labels_path)
    heatmap = tifffile.imread(heatmap_path)
    assert labels.dtype == np.uint16
    assert heatmap.dtype == np.float32
    np.testing.assert_array_equal(labels, expected.labels)
    np.testing.assert_array_equal(heatmap, expected.heatmap)
    assert read_tiff_metadata(labels_path)["inner"] == 0.8


def test_second_run_resumes_and_counts_hand_edits(folder, toy):
    inputs, out = folder
    path = inputs / "three.png"
    segment_file(path, out, PARAMS, toy)
    labels_path, _ = output_paths(path, out)
    stamp = labels_path.stat().st_mtime_ns
    again = segment_file(path, out, PARAMS, toy)
    assert (again.status, again.counts) == (RESUMED, (("three.png", 3),))
    assert labels_path.stat().st_mtime_ns == stamp
    # a user deletes one cell by hand: the resumed count follows the file
    labels = tifffile.imread(labels_path)
    labels[labels == 2] = 0
    tifffile.imwrite(labels_path, labels)
    assert segment_file(path, out, PARAMS, toy).counts == (("three.png", 2),)


def test_another_image_of_the_same_name_is_not_taken_as_done(folder, toy, tmp_path):
    inputs, out = folder
    segment_file(inputs / "three.png", out, PARAMS, toy)
    assert read_tiff_metadata(output_paths(inputs / "three.png", out)[0])["source_name"] == (
        "three.png"
    )
    elsewhere = tmp_path / "other_day"
    elsewhere.mkdir()
    same = save(elsewhere / "three.png", discs(3))  # the same pixels, another copy: resumed
    assert segment_file(same, out, PARAMS, toy).status == RESUMED
    other = save(elsewhere / "three.png", discs(1))  # another image under that name
    result = segment_file(other, out, PARAMS, toy)
    assert result.status == FAILED and result.counts == ()
    assert "made from another file of this name" in result.message
    assert "use overwrite" in result.message
    assert segment_file(other, out, PARAMS, toy, overwrite=True).counts == (("three.png", 1),)


def test_an_output_name_taken_by_a_folder_fails_the_file_and_writes_nothing(folder, toy):
    inputs, out = folder
    labels_path, heatmap_path = output_paths(inputs / "one.png", out)
    heatmap_path.mkdir()
    result = segment_file(inputs / "one.png", out, PARAMS, toy)
    assert result.status == FAILED and "is a folder" in result.message
    assert not labels_path.exists()


def test_resume_notes_changed_settings(folder, toy):
    inputs, out = folder
    segment_file(inputs / "one.png", out, PARAMS, toy)
    result = segment_file(inputs / "one.png", out, SegmentParams(inner=0.9), toy)
    assert result.status == RESUMED
    assert result.notes == (
        "kept existing outputs made with inner=0.8 (now 0.9); use overwrite to redo",
    )


def test_resume_reads_outputs_of_older_versions_as_made_without_the_split(folder, toy):
    from napari_milseg.io import write_labels

    inputs, out = folder
    segment_file(inputs / "one.png", out, PARAMS, toy)
    labels_path, _ = output_paths(inputs / "one.png", out)
    older = read_tiff_metadata(labels_path)
    del older["split_joined"]  # as written before the option existed
    write_labels(labels_path, tifffile.imread(labels_path), overwrite=True, metadata=older)
    result = segment_file(inputs / "one.png", out, SegmentParams(split_joined=True), toy)
    assert result.status == RESUMED
    assert result.notes == (
        "kept existing outputs made with split_joined=False (now True); use overwrite to redo",
    )


def test_overwrite_redoes(folder, toy):
    inputs, out = folder
    segment_file(inputs / "three.png", out, PARAMS, toy)
    result = segment_file(inputs / "three.png", out, SegmentParams(inner=0.95, outer=0.9),
                          toy, overwrite=True)
    assert result.status == DONE
    labels = tifffile.imread(output_paths(inputs / "three.png", out)[0])
    np.testing.assert_array_equal(
        labels, segment(discs(3), inner=0.95, outer=0.9, model=toy).labels
    )


def test_missing_heatmap_is_written_and_existing_labels_kept(folder, toy):
    inputs, out = folder
    path = inputs / "three.png"
    segment_file(path, out, PARAMS, toy)
    labels_path, heatmap_path = output_paths(path, out)
    labels = tifffile.imread(labels_path)
    labels[labels == 1] = 0
    tifffile.imwrite(labels_path, labels)
    heatmap_path.unlink()
    result = segment_file(path, out, PARAMS, toy)
    assert result.status == DONE
    assert result.counts == (("three.png", 2),)
    assert heatmap_path.exists()
    np.testing.assert_array_equal(tifffile.imread(labels_path), labels)
    assert "kept the existing three_labels.tif" in result.notes[0]


def test_stack_file_gets_one_row_per_plane(tmp_path, toy):
    stack = np.stack([discs(1), discs(4), discs(2)])
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, stack, photometric="rgb")
    out = tmp_path / "out"
    out.mkdir()
    result = segment_file(path, out, PARAMS, toy)
    assert result.counts == (("movie.tif[0]", 1), ("movie.tif[1]", 4), ("movie.tif[2]", 2))
    labels = tifffile.imread(out / "movie_labels.tif")
    assert labels.shape == (3, 140, 170)
    assert tifffile.imread(out / "movie_heatmap.tif").shape == (3, 140, 170)
    resumed = segment_file(path, out, PARAMS, toy)
    assert (resumed.status, resumed.counts) == (RESUMED, result.counts)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "file is empty (0 bytes)"),
        (b"hello", "not an image: the content is not JPEG, PNG, TIFF or BMP "
                   "(despite the extension .png)"),
    ],
)
def test_bad_file_becomes_a_failed_result(tmp_path, toy, content, message):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    result = segment_file(path, tmp_path, PARAMS, toy)
    assert (result.status, result.message, result.unexpected) == (FAILED, message, False)
    assert sorted(os.listdir(tmp_path)) == ["bad.png"]


def test_too_small_image_becomes_a_failed_result(tmp_path, toy):
    path = save(tmp_path / "tiny.png", np.zeros((10, 10, 3), np.uint8))
    result = segment_file(path, tmp_path, PARAMS, toy)
    assert result.status == FAILED
    assert "smaller than one expected cell" in result.message


def test_unexpected_error_is_caught_with_its_traceback(folder, toy, monkeypatch):
    inputs, out = folder

    def broken(*args, **kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr("napari_milseg.segmentation.label_cells", broken)
    result = segment_file(inputs / "one.png", out, PARAMS, toy)
    assert (result.status, result.message, result.unexpected) == (
        FAILED, "unexpected ZeroDivisionError: boom", True
    )
    assert "Traceback" in result.detail and "boom" in result.detail
    assert os.listdir(out) == []


def test_warnings_become_notes(tmp_path, toy):
    path = tmp_path / "png_inside.jpg"
    Image.fromarray(discs(2)).save(path, format="PNG")
    result = segment_file(path, tmp_path, PARAMS, toy)
    assert result.status == DONE
    assert result.notes == (
        f"{path}: the extension .jpg says JPEG but the content is PNG; read as PNG",
    )


def test_batch_writes_counts_in_input_order(folder, toy):
    inputs, out = folder
    paths = sorted(inputs.iterdir())
    reports = []
    batch = run(segment_files_steps(paths, out, PARAMS, toy), reports.append)
    assert [Path(r.path).name for r in batch.results] == ["one.png", "three.png", "two.tif"]
    assert batch.counts_path == out / "counts.csv"
    assert (out / "counts.csv").read_text() == "image,cells\none.png,1\nthree.png,3\ntwo.tif,2\n"
    finished = [r for r in reports if "result" in r.info]
    assert [(r.step, r.total) for r in finished] == [(1, 3), (2, 3), (3, 3)]
    assert any("sub" in r.info for r in reports)


def test_batch_merges_with_existing_counts(folder, toy):
    inputs, out = folder
    (out / "counts.csv").write_text("image,cells\nold.jpg,7\nthree.png,99\n")
    run(segment_files_steps([inputs / "three.png", inputs / "one.png"], out, PARAMS, toy))
    assert list(read_counts(out / "counts.csv").rows.items()) == [
        ("old.jpg", 7), ("three.png", 3), ("one.png", 1)
    ]


def test_batch_refuses_a_foreign_counts_file_before_any_work(folder, toy):
    inputs, out = folder
    (out / "counts.csv").write_text("sample,area\nx,1\n")
    with pytest.raises(ValueError, match="not a counts file.*move .*counts.csv away"):
        run(segment_files_steps(sorted(inputs.iterdir()), out, PARAMS, toy))
    assert os.listdir(out) == ["counts.csv"]


def test_batch_same_stem_is_refused_for_the_second_file(folder, toy):
    inputs, out = folder
    save(inputs / "one.tif", discs(2))
    batch = run(segment_files_steps([inputs / "one.png", inputs / "one.tif"], out, PARAMS, toy))
    assert [r.status for r in batch.results] == [DONE, FAILED]
    assert "same names as those of" in batch.results[1].message
    assert str(inputs / "one.png") in batch.results[1].message
    assert (out / "counts.csv").read_text() == "image,cells\none.png,1\n"


def test_batch_does_a_file_given_twice_once(folder, toy, monkeypatch):
    inputs, out = folder
    monkeypatch.chdir(inputs.parent)
    relative = Path(inputs.name) / "one.png"
    batch = run(segment_files_steps([relative, inputs / "one.png", relative], out, PARAMS, toy))
    assert [r.status for r in batch.results] == [DONE]
    assert batch.repeated == [inputs / "one.png", relative]
    assert (out / "counts.csv").read_text() == "image,cells\none.png,1\n"


def test_batch_ignores_its_own_outputs_in_the_output_folder(folder, toy):
    inputs, _ = folder
    run(segment_files_steps(sorted(inputs.iterdir()), inputs, PARAMS, toy))
    listed = sorted(p for p in inputs.iterdir() if p.suffix in (".png", ".tif"))
    batch = run(segment_files_steps(listed, inputs, PARAMS, toy))
    assert sorted(p.name for p in batch.ignored) == sorted(
        f"{stem}_{kind}.tif" for stem in ("one", "three", "two") for kind in ("labels", "heatmap")
    )
    assert [r.status for r in batch.results] == [RESUMED] * 3


def test_batch_with_only_failures_writes_no_counts(tmp_path, toy):
    bad = tmp_path / "bad.png"
    bad.write_text("x")
    out = tmp_path / "out"
    out.mkdir()
    batch = run(segment_files_steps([bad], out, PARAMS, toy))
    assert [r.status for r in batch.results] == [FAILED]
    assert batch.counts_path is None
    assert os.listdir(out) == []


def test_batch_bad_workers_value(folder, toy):
    inputs, out = folder
    with pytest.raises(ValueError, match="workers"):
        run(segment_files_steps([], out, PARAMS, toy, workers=0))
