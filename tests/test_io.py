"""Tests for napari_milseg.io: reading by content, listing, atomic no-clobber writing."""

from __future__ import annotations

import errno
import itertools
import os
import pickle
import stat
import warnings

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_milseg import io
from napari_milseg.io import (
    CountsTable,
    ExtensionWarning,
    ImageReadError,
    OutputFolderError,
    atomic_write,
    check_output_folder,
    label_dtype,
    list_images,
    load_image,
    read_counts,
    read_image,
    read_tiff_metadata,
    sniff_format,
    write_counts,
    write_heatmap,
    write_labels,
)

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (30, 40, 3), dtype=np.uint8)
GREY = RNG.integers(0, 256, (30, 40), dtype=np.uint8)


def files_in(folder) -> list[str]:
    return sorted(os.listdir(folder))


# --- reading -------------------------------------------------------------


@pytest.mark.parametrize(("suffix", "fmt"), [(".png", "PNG"), (".bmp", "BMP"), (".tif", "TIFF")])
def test_lossless_rgb_round_trip(tmp_path, suffix, fmt):
    path = tmp_path / f"rgb{suffix}"
    if fmt == "TIFF":
        tifffile.imwrite(path, RGB)
    else:
        Image.fromarray(RGB).save(path)
    image = load_image(path)
    assert (image.format, image.rgb, image.plane_axes, image.is_stack) == (fmt, True, (), False)
    assert image.path == path
    assert image.data.dtype == np.uint8
    np.testing.assert_array_equal(image.data, RGB)


def test_jpeg_rgb(tmp_path):
    path = tmp_path / "rgb.jpg"
    Image.fromarray(RGB).save(path, quality=95)
    image = load_image(path)
    assert (image.format, image.rgb, image.data.shape, image.data.dtype) == (
        "JPEG", True, (30, 40, 3), np.uint8
    )
    assert abs(image.data.astype(float).mean() - RGB.mean()) < 3


@pytest.mark.parametrize("suffix", [".png", ".tif", ".bmp"])
def test_grayscale_uint8(tmp_path, suffix):
    path = tmp_path / f"grey{suffix}"
    if suffix == ".tif":
        tifffile.imwrite(path, GREY)
    else:
        Image.fromarray(GREY).save(path)
    image = load_image(path)
    assert image.rgb is False
    assert image.data.dtype == np.uint8
    np.testing.assert_array_equal(image.data, GREY)


def test_16_bit_png_and_tiff(tmp_path):
    data = RNG.integers(0, 65536, (30, 40), dtype=np.uint16)
    Image.fromarray(data).save(tmp_path / "g16.png")
    tifffile.imwrite(tmp_path / "g16.tif", data)
    rgb16 = RNG.integers(0, 65536, (30, 40, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "rgb16.tif", rgb16, photometric="rgb")
    for name in ("g16.png", "g16.tif"):
        image = read_image(tmp_path / name)
        assert image.dtype == np.uint16
        np.testing.assert_array_equal(image, data)
    loaded = load_image(tmp_path / "rgb16.tif")
    assert loaded.rgb
    np.testing.assert_array_equal(loaded.data, rgb16)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_float_and_int_tiff(tmp_path, dtype):
    data = (RNG.random((30, 40)) * 1e4 - 5e3).astype(dtype)
    tifffile.imwrite(tmp_path / "f.tif", data)
    image = load_image(tmp_path / "f.tif")
    assert image.data.dtype == dtype
    assert not image.rgb
    np.testing.assert_array_equal(image.data, data)


def test_big_endian_tiff_comes_back_native(tmp_path):
    data = RNG.random((10, 12)).astype(">f4")
    tifffile.imwrite(tmp_path / "be.tif", data, byteorder=">")
    image = read_image(tmp_path / "be.tif")
    assert image.dtype == np.float32
    assert image.dtype.byteorder in ("=", "|", "<")
    np.testing.assert_array_equal(image, data.astype(np.float32))


def test_rgba_png_keeps_alpha_as_fourth_channel(tmp_path):
    rgba = RNG.integers(0, 256, (30, 40, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    image = load_image(tmp_path / "a.png")
    assert image.rgb
    np.testing.assert_array_equal(image.data, rgba)


def test_palette_png_becomes_rgb(tmp_path):
    im = Image.fromarray(RGB).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    im.save(tmp_path / "p.png")
    expected = np.asarray(Image.open(tmp_path / "p.png").convert("RGB"))
    image = load_image(tmp_path / "p.png")
    assert image.rgb and image.data.shape == (30, 40, 3)
    np.testing.assert_array_equal(image.data, expected)


def test_grey_with_alpha_becomes_grey(tmp_path):
    la = np.stack([GREY, np.full_like(GREY, 128)], axis=-1)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    image = load_image(tmp_path / "la.png")
    assert not image.rgb
    np.testing.assert_array_equal(image.data, GREY)


def test_planar_rgb_tiff_gets_channels_last(tmp_path):
    planar = np.moveaxis(RGB, -1, 0).copy()
    tifffile.imwrite(tmp_path / "planar.tif", planar, photometric="rgb", planarconfig="separate")
    image = load_image(tmp_path / "planar.tif")
    assert image.rgb
    np.testing.assert_array_equal(image.data, RGB)


def test_multipage_grey_stack(tmp_path):
    stack = RNG.integers(0, 256, (5, 30, 40), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "stack.tif", stack)
    image = load_image(tmp_path / "stack.tif")
    assert (image.rgb, image.plane_axes, image.is_stack) == (False, (5,), True)
    np.testing.assert_array_equal(image.data, stack)


def test_rgb_time_series(tmp_path):
    stack = RNG.integers(0, 256, (2, 30, 40, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "t.tif", stack, photometric="rgb")
    image = load_image(tmp_path / "t.tif")
    assert (image.rgb, image.plane_axes) == (True, (2,))
    np.testing.assert_array_equal(image.data, stack)


def test_imagej_hyperstack_axes(tmp_path):
    tz = RNG.integers(0, 256, (2, 3, 30, 40), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "tz.tif", tz, imagej=True, metadata={"axes": "TZYX"})
    image = load_image(tmp_path / "tz.tif")
    assert image.axes == "TZYX"
    assert (image.rgb, image.plane_axes) == (False, (2, 3))


def test_bigtiff(tmp_path):
    tifffile.imwrite(tmp_path / "big.tif", GREY, bigtiff=True)
    assert sniff_format(tmp_path / "big.tif") == "TIFF"
    np.testing.assert_array_equal(read_image(tmp_path / "big.tif"), GREY)


def test_wrong_extension_is_read_by_content_with_a_warning(tmp_path):
    path = tmp_path / "really_png.jpg"
    Image.fromarray(RGB).save(path, format="PNG")
    with pytest.warns(ExtensionWarning, match=r"\.jpg says JPEG but the content is PNG"):
        image = load_image(path)
    assert image.format == "PNG"
    np.testing.assert_array_equal(image.data, RGB)


def test_unknown_extension_is_read_by_content_silently(tmp_path):
    path = tmp_path / "export.dat"
    tifffile.imwrite(path, GREY)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(read_image(path), GREY)


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: None, "file does not exist"),
        (lambda p: p.mkdir(), "is a folder"),
        (lambda p: p.write_bytes(b""), r"file is empty \(0 bytes\)"),
        (lambda p: p.write_text("hello, not an image"), "not an image.*despite the extension"),
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(50)), "corrupt or truncated PNG"),
        (lambda p: p.write_bytes(b"II*\x00" + bytes(20)), "corrupt or truncated TIFF"),
        (lambda p: p.write_bytes(b"\xff\xd8\xff" + bytes(20)), "JPEG"),
    ],
)
def test_unreadable_files_name_the_file_and_the_problem(tmp_path, make, match):
    path = tmp_path / "broken.png"
    make(path)
    with pytest.raises(ImageReadError, match=match) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtensionWarning)
        load_image(path)
    assert str(path) in str(info.value)
    assert info.value.path == path


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF", "TIFF-zlib"])
def test_truncated_files_are_reported(tmp_path, fmt):
    path = tmp_path / "cut.img"
    if fmt.startswith("TIFF"):
        tifffile.imwrite(path, RGB, compression="zlib" if fmt.endswith("zlib") else None)
    else:
        Image.fromarray(RGB).save(path, format=fmt)
    _truncate(path)
    with pytest.raises(ImageReadError, match=f"corrupt or truncated {fmt[:4]}"):
        load_image(path)


def test_unreadable_file_permission(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their permissions")
    path = tmp_path / "secret.png"
    Image.fromarray(RGB).save(path)
    path.chmod(0)
    with pytest.raises(ImageReadError, match="permission denied"):
        load_image(path)


def test_image_read_error_survives_pickling(tmp_path):
    err = ImageReadError(tmp_path / "x.png", "file does not exist")
    back = pickle.loads(pickle.dumps(err))
    assert (back.path, back.reason) == (err.path, err.reason)
    assert str(back) == f"{err.path}: file does not exist"
    assert isinstance(back, OSError)


# --- listing -------------------------------------------------------------


@pytest.fixture
def mixed_folder(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("b.png", "a.jpg", "C.TIF", "d.jpeg", "notes.txt", "boxes.xml", ".hidden.jpg"):
        (folder / name).write_bytes(b"x")
    (folder / "sub").mkdir()
    (folder / "sub" / "deep.jpg").write_bytes(b"x")
    return folder


def test_list_images_from_a_folder(mixed_folder):
    skipped = []
    names = [p.name for p in list_images([mixed_folder], skipped)]
    assert names == ["C.TIF", "a.jpg", "b.png", "d.jpeg"]
    assert sorted(p.name for p in skipped) == ["boxes.xml", "notes.txt"]


def test_list_images_keeps_files_named_directly_in_order(mixed_folder, tmp_path):
    extra = tmp_path / "zzz.dat"
    missing = tmp_path / "missing.jpg"
    paths = list(
        list_images([extra, mixed_folder / "notes.txt", mixed_folder, missing, mixed_folder])
    )
    assert paths == [
        extra,
        mixed_folder / "notes.txt",
        mixed_folder / "C.TIF",
        mixed_folder / "a.jpg",
        mixed_folder / "b.png",
        mixed_folder / "d.jpeg",
        missing,
    ]


def test_list_images_is_lazy(mixed_folder):
    def inputs():
        yield mixed_folder
        raise AssertionError("the second input was read before it was needed")

    first = list(itertools.islice(list_images(inputs()), 4))
    assert [p.name for p in first] == ["C.TIF", "a.jpg", "b.png", "d.jpeg"]


# --- writing -------------------------------------------------------------


@pytest.mark.parametrize(
    ("top", "dtype"),
    [(0, np.uint16), (300, np.uint16), (65535, np.uint16), (65536, np.uint32),
     (2**32 - 1, np.uint32), (2**32, np.uint64)],
)
def test_label_dtype(top, dtype):
    assert label_dtype(top) == np.dtype(dtype)


def test_label_dtype_refuses_negative():
    with pytest.raises(ValueError, match="negative"):
        label_dtype(-1)


@pytest.mark.parametrize(
    ("top", "dtype"), [(3, np.uint16), (65535, np.uint16), (65536, np.uint32), (70000, np.uint32)]
)
def test_write_labels_round_trip_with_smallest_dtype(tmp_path, top, dtype):
    labels = np.zeros((20, 30), np.int64)
    labels[2:5, 3:6] = top
    labels[10, 10] = 1
    before = labels.copy()
    path = write_labels(tmp_path / "x_labels.tif", labels)
    back = tifffile.imread(path)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, labels)
    np.testing.assert_array_equal(labels, before)
    assert files_in(tmp_path) == ["x_labels.tif"]


def test_write_labels_stack_and_metadata(tmp_path):
    labels = RNG.integers(0, 50, (3, 20, 30)).astype(np.int32)
    path = write_labels(tmp_path / "s.tif", labels, metadata={"inner": 0.8, "model": "m.pt"})
    back = tifffile.imread(path)
    assert back.shape == (3, 20, 30)
    np.testing.assert_array_equal(back, labels)
    assert read_tiff_metadata(path) == {"inner": 0.8, "model": "m.pt"}


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (np.zeros((4, 4), np.float32), "integers"),
        (np.zeros(4, np.int32), "at least 2D"),
        (-np.ones((4, 4), np.int32), "negative"),
    ],
)
def test_write_labels_refuses_bad_labels(tmp_path, labels, match):
    with pytest.raises(ValueError, match=match):
        write_labels(tmp_path / "x.tif", labels)
    assert files_in(tmp_path) == []


def test_write_heatmap_is_float32(tmp_path):
    heatmap = RNG.random((20, 30))
    path = write_heatmap(tmp_path / "h.tif", heatmap)
    back = tifffile.imread(path)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, heatmap.astype(np.float32))


@pytest.mark.parametrize(
    "writer",
    [
        lambda p, o: write_labels(p, np.ones((4, 4), np.int32), overwrite=o),
        lambda p, o: write_heatmap(p, np.ones((4, 4)), overwrite=o),
        lambda p, o: write_counts(p, [("a.jpg", 3)], overwrite=o),
    ],
)
def test_existing_files_are_never_overwritten_unless_asked(tmp_path, writer):
    path = tmp_path / "out.tif"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match=r"out\.tif already exists; not overwritten"):
        writer(path, False)
    assert path.read_bytes() == b"precious"
    assert files_in(tmp_path) == ["out.tif"]
    writer(path, True)
    assert path.read_bytes() != b"precious"
    assert files_in(tmp_path) == ["out.tif"]


def test_written_files_get_ordinary_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        path = write_labels(tmp_path / "x.tif", np.ones((4, 4), np.int32))
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_disk_full_leaves_nothing_behind(tmp_path, monkeypatch):
    def full_disk(fh, *args, **kwargs):
        fh.write(b"II*\x00 half a tiff")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tifffile, "imwrite", full_disk)
    with pytest.raises(OSError, match="disk full while writing .*x_labels.tif") as info:
        write_labels(tmp_path / "x_labels.tif", np.ones((4, 4), np.int32))
    assert info.value.errno == errno.ENOSPC
    assert files_in(tmp_path) == []


def test_failed_overwrite_keeps_the_old_file(tmp_path):
    path = tmp_path / "counts.csv"
    path.write_text("old")

    def fail(fh):
        fh.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, fail, overwrite=True)
    assert path.read_text() == "old"
    assert files_in(tmp_path) == ["counts.csv"]


def test_a_file_appearing_while_writing_is_not_clobbered(tmp_path):
    path = tmp_path / "x.csv"

    def write(fh):
        fh.write(b"mine")
        path.write_text("someone else's")  # another process got there first

    with pytest.raises(FileExistsError):
        atomic_write(path, write)
    assert path.read_text() == "someone else's"
    assert files_in(tmp_path) == ["x.csv"]


def test_write_into_a_missing_folder_or_onto_a_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_heatmap(tmp_path / "nope" / "h.tif", np.ones((4, 4)))
    (tmp_path / "h.tif").mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder"):
        write_heatmap(tmp_path / "h.tif", np.ones((4, 4)), overwrite=True)


# --- output folder -------------------------------------------------------


def test_check_output_folder_creates_parents(tmp_path):
    folder = check_output_folder(tmp_path / "a" / "b")
    assert folder.is_dir()
    assert files_in(folder) == []


def test_check_output_folder_refuses_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputFolderError, match="is a file, not a folder"):
        check_output_folder(tmp_path / "f")
    with pytest.raises(OutputFolderError, match="cannot be created"):
        check_output_folder(tmp_path / "f" / "sub")


def test_check_output_folder_without_create(tmp_path):
    with pytest.raises(OutputFolderError, match="does not exist"):
        check_output_folder(tmp_path / "missing", create=False)


def test_check_output_folder_reports_unwritable(tmp_path, monkeypatch):
    real_open = os.open

    def read_only(path, *args, **kwargs):
        if ".milseg-write-test" in str(path):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(io.os, "open", read_only)
    with pytest.raises(OutputFolderError, match="is not writable: Read-only file system"):
        check_output_folder(tmp_path)


def test_check_output_folder_real_permissions(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OutputFolderError, match="not writable"):
            check_output_folder(folder)
    finally:
        folder.chmod(0o755)


# --- counts --------------------------------------------------------------


def test_counts_round_trip(tmp_path):
    rows = [("b.jpg", 3), ("a, odd name.png", 0), ("stack.tif[1]", 12)]
    path = write_counts(tmp_path / "counts.csv", rows)
    assert path.read_text() == 'image,cells\nb.jpg,3\n"a, odd name.png",0\nstack.tif[1],12\n'
    assert list(read_counts(path).rows.items()) == rows


def test_counts_keep_file_names_that_are_not_utf8(tmp_path):
    import os

    name = os.fsdecode(b"caf\xe9.jpg")  # Latin-1 name, as an old camera PC writes it
    path = write_counts(tmp_path / "counts.csv", [(name, 4), ("b.jpg", 2)])
    assert path.read_bytes() == b"image,cells\ncaf\xe9.jpg,4\nb.jpg,2\n"
    assert list(read_counts(path).rows.items()) == [(name, 4), ("b.jpg", 2)]


def test_a_counts_table_saved_by_a_spreadsheet_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "counts.csv"
    path.write_bytes("\ufeffimage,cells\r\na.jpg,3\r\n".encode())
    assert read_counts(path).rows == {"a.jpg": 3}


def test_counts_table_update_keeps_order_and_replaces():
    table = CountsTable({"a": 1, "b": 2})
    table.update([("b", 5), ("c", 7)])
    assert list(table.rows.items()) == [("a", 1), ("b", 5), ("c", 7)]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("name,count\na,1\n", "not a counts file"),
        ("", "not a counts file"),
        ("image,cells\na,1,2\n", "line 2: expected 2 values"),
        ("image,cells\na,1\nb,many\n", "line 3: cell count 'many'"),
    ],
)
def test_read_counts_refuses_other_files(tmp_path, text, match):
    path = tmp_path / "counts.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_counts(path)


def test_tifffile_log_lines_do_not_leak_next_to_the_error(tmp_path, caplog):
    path = tmp_path / "nopages.tif"
    path.write_bytes(b"II*\x00" + bytes(6))
    with caplog.at_level("DEBUG"), pytest.raises(ImageReadError, match="no image found"):
        load_image(path)
    assert [r for r in caplog.records if r.name.startswith("tifffile")] == []
