"""Training image sets from folders, files and list files (no torch needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_milseg.dataset import (
    DatasetError,
    ImageSet,
    expand_inputs,
    images_from_arrays,
    planes,
    read_images,
    read_images_steps,
    read_list,
    require_positives,
)
from napari_milseg.params import MIN_POSITIVES
from napari_milseg.progress import Progress, run


def rgb(seed: int, shape=(30, 40)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


@pytest.fixture
def folder(tmp_path) -> Path:
    """Mixed sizes and modes, plus a text file and a corrupt JPEG."""
    d = tmp_path / "pos"
    d.mkdir()
    Image.fromarray(rgb(0)).save(d / "a.png")
    Image.fromarray(rgb(1, (50, 20))[..., 0]).save(d / "b.png")  # grayscale, other size
    Image.fromarray(rgb(2)).convert("RGBA").save(d / "c.png")  # alpha
    tifffile.imwrite(d / "d.tif", (rgb(3)[..., 0].astype(np.uint16) * 200))  # 16-bit
    Image.fromarray(rgb(4)).save(d / "e.jpg")
    (d / "notes.txt").write_text("not an image")
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this JPEG stops here")
    (d / ".hidden.png").write_bytes(b"ignored")
    (d / "sub").mkdir()
    Image.fromarray(rgb(5)).save(d / "sub" / "deeper.png")  # not recursive
    return d


def test_folder_reads_images_as_stored_and_reports_what_it_left_out(folder):
    found = read_images([folder], "positive")
    assert [Path(n).name for n in found.names] == ["a.png", "b.png", "c.png", "d.tif", "e.jpg"]
    shapes = [im.shape for im in found.images]
    assert shapes == [(30, 40, 3), (50, 20), (30, 40, 4), (30, 40), (30, 40, 3)]
    assert found.images[3].dtype == np.uint16
    np.testing.assert_array_equal(found.images[0], rgb(0))  # kept as read, not converted
    assert found.files == 5 and len(found) == 5
    assert [Path(p).name for p in found.skipped] == ["notes.txt"]
    assert [Path(p).name for p, _ in found.failed] == ["broken.jpg"]
    assert "corrupt or truncated JPEG" in found.failed[0][1]
    assert found.sources == (str(folder),)
    summary = found.summary()
    assert summary.startswith("5 images from 5 files; 1 non-image file skipped (e.g. notes.txt)")
    assert "1 file could not be read (e.g. broken.jpg: corrupt" in summary


def test_describe_is_what_the_card_keeps(folder):
    card = read_images([folder]).describe()
    assert card["images"] == card["files_used"] == 5
    assert (card["files_skipped"], card["files_failed"]) == (1, 1)
    assert card["sources"] == [str(folder)]
    assert len(card["names"]) == 5
    assert card["failed"][0].startswith(str(folder / "broken.jpg") + ": corrupt")


def test_progress_is_reported_per_file(folder):
    reports = []
    result = run(read_images_steps([folder], "negative"), reports.append)
    assert all(isinstance(r, Progress) for r in reports)
    # six files to read (five images, one broken), then the final report
    assert [(r.step, r.total) for r in reports] == [(i, 6) for i in range(7)]
    assert reports[0].message == "reading negative images"
    assert reports[0].info["file"] == "a.png"
    assert len(result) == 5


def test_list_file_paths_are_relative_to_the_list_with_comments(tmp_path, folder):
    lists = tmp_path / "splits"
    lists.mkdir()
    listing = lists / "train.txt"
    listing.write_text(
        "# training split\n"
        "\n"
        "../pos/e.jpg\n"
        f"   {folder / 'a.png'}   \n"  # absolute, with spaces around
        "# ../pos/b.png is held out\n"
        "../pos/e.jpg\n"  # twice: read once
        "../pos/missing.png\n"
        "../pos/notes.txt\n",
        encoding="utf-8",
    )
    found = read_images([listing])
    assert [Path(n).name for n in found.names] == ["e.jpg", "a.png"]
    failed = dict((Path(p).name, why) for p, why in found.failed)
    assert set(failed) == {"missing.png", "notes.txt"}
    assert "does not exist" in failed["missing.png"]
    assert "not an image" in failed["notes.txt"]
    assert found.skipped == ()


def test_the_benchmark_split_list_resolves(cbc):
    repo = Path(__file__).resolve().parents[1]
    paths, skipped = expand_inputs([repo / "benchmarks" / "splits" / "cbc-train.txt"])
    assert len(paths) == 240 and skipped == []
    assert all(p.exists() for p in paths)


def test_read_list_keeps_order_and_reads_paths_relative_to_the_list(tmp_path):
    listing = tmp_path / "splits" / "val.txt"
    listing.parent.mkdir()
    absolute = tmp_path / "elsewhere" / "x.png"
    listing.write_text(f"# validation\n\n  ../b.png \n{absolute}\na.png\n", encoding="utf-8-sig")
    assert read_list(listing) == [listing.parent / "../b.png", absolute, listing.parent / "a.png"]


@pytest.mark.parametrize(
    "content, message",
    [(b"# nothing here\n\n", "names no images"), (b"\xff\xfe\x00\xd8 binary", "not a text file")],
)
def test_read_list_explains_a_useless_list(tmp_path, content, message):
    listing = tmp_path / "l.txt"
    listing.write_bytes(content)
    with pytest.raises(DatasetError, match=message):
        read_list(listing)
    with pytest.raises(DatasetError, match="cannot be read"):
        read_list(tmp_path / "missing.txt")


def test_a_list_may_name_folders(tmp_path, folder):
    listing = tmp_path / "all.txt"
    listing.write_text("pos\n")
    paths, skipped = expand_inputs([listing])
    assert [p.name for p in paths] == ["a.png", "b.png", "broken.jpg", "c.png", "d.tif", "e.jpg"]
    assert [p.name for p in skipped] == ["notes.txt"]


def test_folders_files_and_lists_combine_without_repeats(tmp_path, folder):
    listing = tmp_path / "l.txt"
    listing.write_text("pos/a.png\n")
    paths, _ = expand_inputs([folder / "a.png", listing, folder])
    assert [p.name for p in paths] == [
        "a.png", "b.png", "broken.jpg", "c.png", "d.tif", "e.jpg",
    ]


def test_stacks_give_one_image_per_plane(tmp_path):
    d = tmp_path / "stacks"
    d.mkdir()
    stack = np.stack([rgb(i)[..., 0] for i in range(3)])
    tifffile.imwrite(d / "z.tif", stack, photometric="minisblack")
    colour = np.stack([rgb(i) for i in range(2)])
    tifffile.imwrite(d / "t.tif", colour, photometric="rgb")
    found = read_images([d])
    assert found.names == (
        str(d / "t.tif[0]"), str(d / "t.tif[1]"),
        str(d / "z.tif[0]"), str(d / "z.tif[1]"), str(d / "z.tif[2]"),
    )
    assert [im.shape for im in found.images] == [(30, 40, 3)] * 2 + [(30, 40)] * 3
    np.testing.assert_array_equal(found.images[3], stack[1])
    assert found.files == 2


def test_planes_are_views_and_guess_colour():
    data = np.zeros((2, 3, 10, 12), np.uint8)
    parts = planes(data)
    assert len(parts) == 6 and parts[0].shape == (10, 12)
    assert np.shares_memory(parts[5], data)
    assert planes(np.zeros((10, 12, 3)))[0].shape == (10, 12, 3)
    assert len(planes(np.zeros((5, 10, 12, 3)), rgb=True)) == 5
    assert len(planes(np.zeros((3, 10, 12)), rgb=False)) == 3


@pytest.mark.parametrize("bad", [np.zeros(5), np.zeros((0, 4))])
def test_planes_refuse_non_images(bad):
    from napari_milseg.preprocess import ImageError

    with pytest.raises(ImageError):
        planes(bad)


def test_images_from_arrays_lists_unusable_ones():
    arrays = [rgb(0), np.zeros((2, 20, 20), np.float32), np.array([1, 2, 3]),
              np.full((20, 20), np.nan, np.float32)]
    found = images_from_arrays(arrays, ["a", "stack", "line", "nan"], [True, False, None, False],
                               source="open image layers")
    assert found.names == ("a", "stack[0]", "stack[1]")
    assert found.files == 2
    assert [name for name, _ in found.failed] == ["line", "nan"]
    assert "finite" in found.failed[1][1]
    assert found.sources == ("open image layers",)
    with pytest.raises(ValueError, match="2 arrays but 1 names"):
        images_from_arrays(arrays[:2], ["a"])


def test_sets_add_up(folder):
    a = read_images([folder / "a.png"])
    b = images_from_arrays([rgb(9)], ["layer:x"])
    both = a + b
    assert both.names == (str(folder / "a.png"), "layer:x")
    assert both.sources == (str(folder / "a.png"), "arrays")
    assert both.files == 2
    assert len(ImageSet() + both) == 2


def test_missing_path_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match=r"path .*nowhere does not exist"):
        read_images([tmp_path / "nowhere"])
    with pytest.raises(DatasetError, match=r"list file .*gone.txt does not exist"):
        read_images([tmp_path / "gone.txt"])


def test_empty_folder_is_an_error_that_counts_other_files(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match=r"folder .*empty holds no image files"):
        read_images([empty])
    (empty / "readme.md").write_text("x")
    (empty / "data.csv").write_text("x")
    with pytest.raises(DatasetError, match=r"2 other files there \(e.g. data.csv\)"):
        read_images([empty])


def test_nothing_given_is_an_error():
    with pytest.raises(DatasetError, match="no positive images given"):
        read_images([], "positive")


def test_list_errors(tmp_path):
    only_comments = tmp_path / "c.txt"
    only_comments.write_text("# nothing\n\n")
    with pytest.raises(DatasetError, match="names no images"):
        read_images([only_comments])
    binary = tmp_path / "b.txt"
    binary.write_bytes(b"\xff\xfe\x00\x81\x00")
    with pytest.raises(DatasetError, match="not a text file"):
        read_images([binary])


def test_no_readable_image_says_how_many_files_failed(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    for name in ("x.jpg", "y.png", "z.tif"):
        (d / name).write_bytes(b"garbage that is no image")
    (d / "note.txt").write_text("x")
    with pytest.raises(DatasetError) as info:
        read_images([d], "positive")
    message = str(info.value)
    assert message.startswith(f"no readable positive images in {d}: ")
    assert "1 non-image file skipped (e.g. note.txt)" in message
    assert "3 files could not be read (e.g. x.jpg: not an image" in message


def test_require_positives_names_the_minimum_and_what_was_left_out(folder):
    found = read_images([folder / "a.png", folder / "broken.jpg"])
    assert len(found) == 1
    with pytest.raises(DatasetError) as info:
        require_positives(found)
    message = str(info.value)
    assert f"at least {MIN_POSITIVES} positive images" in message
    assert "found 1 in" in message
    assert "1 file could not be read (e.g. broken.jpg" in message
    require_positives(read_images([folder]))  # five: enough
    with pytest.raises(DatasetError, match="at least 6"):
        require_positives(read_images([folder]), minimum=6)


def test_inputs_are_not_modified(folder):
    arrays = [rgb(0)]
    before = arrays[0].copy()
    found = images_from_arrays(arrays, ["a"])
    assert found.images[0] is arrays[0]
    np.testing.assert_array_equal(arrays[0], before)
