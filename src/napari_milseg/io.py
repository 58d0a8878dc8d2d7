"""Reading images and folders, writing labels, heatmaps and counts.

Nothing here knows about napari. Readers go by a file's content, not its
name, and every problem becomes an :class:`ImageReadError` that names the
file and says what is wrong with it. Writers never leave a half-written
file behind and never replace an existing file unless asked: data goes to a
hidden temporary file in the destination folder, which is moved into place
only once it is complete.

Examples
--------
>>> from napari_milseg import io                                 # doctest: +SKIP
>>> for path in io.list_images(["smears/", "extra.png"]):        # doctest: +SKIP
...     image = io.load_image(path)
...     print(path.name, image.data.shape, image.rgb)
"""

from __future__ import annotations

import contextlib
import csv
import errno
import logging
import os
import secrets
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

#: Extensions taken as images when listing a folder (compared lower-case).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".png", ".tif", ".tiff", ".bmp")

#: File signatures of the formats read, first bytes to format name.
_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),  # BigTIFF
    (b"MM\x00+", "TIFF"),
    (b"BM", "BMP"),
)

#: The format each extension promises.
_EXTENSION_FORMAT = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}

#: Columns of ``counts.csv``.
COUNTS_COLUMNS = ("image", "cells")


class ImageReadError(OSError):
    """A file that cannot be read as an image.

    Attributes
    ----------
    path : Path
        The file.
    reason : str
        What is wrong with it, without the file name.
    """

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"

    def __reduce__(self):
        # keep (path, reason) when the error crosses a process boundary
        return (type(self), (self.path, self.reason))


class ExtensionWarning(UserWarning):
    """A file whose extension does not match its content (read by content)."""


class OutputFolderError(OSError):
    """An output folder that cannot be created or written to."""


@dataclass(frozen=True)
class LoadedImage:
    """An image read from a file.

    Attributes
    ----------
    data : ndarray, shape (H, W), (H, W, C) or (..., H, W[, C])
        The pixels as stored (no scaling): uint8, uint16, int32, float32,
        bool, ... Leading axes, if any, are planes of a stack (time, Z, ...).
    rgb : bool
        Whether the last axis holds 1 to 4 colour channels.
    format : str
        ``"JPEG"``, ``"PNG"``, ``"TIFF"`` or ``"BMP"``, from the content.
    path : Path
        The file read.
    axes : str
        One letter per axis of ``data`` (``Y``, ``X``, ``S`` for channels,
        ``T``, ``Z``, ... for planes), as far as the file tells.
    """

    data: np.ndarray
    rgb: bool
    format: str
    path: Path
    axes: str = ""

    @property
    def plane_axes(self) -> tuple[int, ...]:
        """Shape of the leading (stack) axes; ``()`` for a single 2D image."""
        spatial = self.data.shape[:-1] if self.rgb else self.data.shape
        return tuple(int(n) for n in spatial[:-2])

    @property
    def is_stack(self) -> bool:
        """Whether the file holds more than one 2D plane axis."""
        return len(self.plane_axes) > 0


def sniff_format(path: str | os.PathLike) -> str | None:
    """The image format of a file from its first bytes.

    Parameters
    ----------
    path : path-like
        The file.

    Returns
    -------
    str or None
        ``"JPEG"``, ``"PNG"``, ``"TIFF"``, ``"BMP"``, or None if the content
        is none of these.

    Raises
    ------
    ImageReadError
        If the file is missing, a folder, empty or unreadable.
    """
    path = Path(path)
    head = _read_head(path)
    for signature, name in _SIGNATURES:
        if head.startswith(signature):
            return name
    return None


def _read_head(path: Path, size: int = 16) -> bytes:
    try:
        with open(path, "rb") as fh:
            head = fh.read(size)
    except FileNotFoundError:
        raise ImageReadError(path, "file does not exist") from None
    except IsADirectoryError:
        raise ImageReadError(path, "is a folder, not an image file") from None
    except PermissionError:
        raise ImageReadError(path, "cannot be read: permission denied") from None
    except OSError as err:
        raise ImageReadError(path, f"cannot be read: {err.strerror or err}") from None
    if not head:
        raise ImageReadError(path, "file is empty (0 bytes)")
    return head


def load_image(path: str | os.PathLike) -> LoadedImage:
    """Read an image file, going by its content rather than its extension.

    JPEG, PNG, BMP (through Pillow) and TIFF (through tifffile, including
    multi-page stacks, BigTIFF, 16-bit, 32-bit and float data) are read.
    Palette images become RGB(A), grayscale-with-alpha becomes grayscale,
    CMYK and other colour spaces become RGB; everything else keeps its
    values and dtype. TIFF channels stored first (planar RGB) are moved to
    the last axis. The EXIF orientation of photos is not applied, so pixels
    line up with what napari shows.

    Parameters
    ----------
    path : path-like
        The file.

    Returns
    -------
    LoadedImage
        The pixels with what is known about their axes.

    Raises
    ------
    ImageReadError
        If the file is missing, empty, not an image, corrupt or truncated.

    Warns
    -----
    ExtensionWarning
        If the extension promises another format than the content holds
        (the content wins).

    See Also
    --------
    read_image : just the pixel array.
    list_images : the image files in a mix of files and folders.
    """
    path = Path(path)
    fmt = sniff_format(path)
    if fmt is None:
        raise ImageReadError(
            path, "not an image: the content is not JPEG, PNG, TIFF or BMP"
            + (f" (despite the extension {path.suffix})" if path.suffix else "")
        )
    promised = _EXTENSION_FORMAT.get(path.suffix.lower())
    if promised is not None and promised != fmt:
        warnings.warn(
            f"{path}: the extension {path.suffix} says {promised} but the content is {fmt}; "
            f"read as {fmt}",
            ExtensionWarning,
            stacklevel=2,
        )
    if fmt == "TIFF":
        return _load_tiff(path)
    return _load_pillow(path, fmt)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file into an array (see :func:`load_image`).

    Parameters
    ----------
    path : path-like
        The file.

    Returns
    -------
    ndarray, shape (H, W), (H, W, C) or (..., H, W[, C])
        The pixels as stored.

    Raises
    ------
    ImageReadError
        As :func:`load_image`.
    """
    return load_image(path).data


#: Pillow modes converted on reading, and what to.
_PILLOW_CONVERT = {
    "P": "RGB",  # RGBA when the palette has transparency, see _load_pillow
    "PA": "RGBA",
    "LA": "L",
    "La": "L",
    "CMYK": "RGB",
    "YCbCr": "RGB",
    "LAB": "RGB",
    "HSV": "RGB",
    "RGBX": "RGB",
    "RGBa": "RGBA",
    "I;16B": "I",
    "I;16L": "I;16",
    "I;16N": "I;16",
}


def _load_pillow(path: Path, fmt: str) -> LoadedImage:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode == "P":
                target = "RGBA" if "transparency" in im.info else "RGB"
            else:
                target = _PILLOW_CONVERT.get(mode)
            if target is not None:
                im = im.convert(target)
            data = np.array(im)
    except UnidentifiedImageError:
        raise ImageReadError(
            path, f"corrupt or truncated {fmt} file (its header cannot be decoded)"
        ) from None
    except Image.DecompressionBombError as err:
        raise ImageReadError(path, f"refused as too large to decode safely: {err}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageReadError(
            path, f"corrupt or truncated {fmt} file ({_first_line(err)})"
        ) from None
    if data.ndim == 2:
        return LoadedImage(data, rgb=False, format=fmt, path=path, axes="YX")
    return LoadedImage(data, rgb=True, format=fmt, path=path, axes="YXS")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _tifffile_messages(path: Path):
    """Collect what tifffile logs while reading ``path``; re-issue it as warnings on success.

    On failure the :class:`ImageReadError` says it all, so tifffile's own
    lines would only repeat it, in another form, on stderr.
    """
    logger = logging.getLogger("tifffile")
    handler = _Collect()
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
    for message in dict.fromkeys(handler.messages):
        warnings.warn(f"{path}: tifffile: {message}", UserWarning, stacklevel=4)


def _load_tiff(path: Path) -> LoadedImage:
    import tifffile

    try:
        with _tifffile_messages(path), tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise ImageReadError(path, "corrupt or truncated TIFF file (no image found in it)")
            series = tif.series[0]
            axes = series.axes
            data = series.asarray()
    except ImageReadError:
        raise
    except MemoryError:
        raise ImageReadError(path, "too large to read into memory") from None
    except Exception as err:  # tifffile and its codecs raise many types for bad files
        raise ImageReadError(
            path, f"corrupt or truncated TIFF file ({type(err).__name__}: {_first_line(err)})"
        ) from None
    data = np.asarray(data)
    if data.dtype.byteorder not in ("=", "|"):
        data = data.astype(data.dtype.newbyteorder("="))
    if len(axes) != data.ndim:  # not expected, but never trust axes blindly
        axes = "Q" * (data.ndim - 2) + "YX"
    rgb = False
    for channel_axis in ("S", "C"):
        i = axes.find(channel_axis)
        if i >= 0 and data.shape[i] <= 4 and data.ndim >= 3:
            data = np.moveaxis(data, i, -1)
            axes = axes[:i] + axes[i + 1 :] + "S"
            rgb = True
            break
    if data.ndim < 2:
        raise ImageReadError(path, f"TIFF holds a {data.ndim}-D array, not an image")
    return LoadedImage(np.ascontiguousarray(data), rgb=rgb, format="TIFF", path=path, axes=axes)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def is_image_name(path: str | os.PathLike) -> bool:
    """Whether a file name has one of the :data:`IMAGE_EXTENSIONS`."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def list_images(
    inputs: Iterable[str | os.PathLike], skipped: list[Path] | None = None
) -> Iterator[Path]:
    """The image files named by a mix of files and folders, lazily.

    Folders are listed one at a time (not recursively), in sorted name
    order; in them, files with an image extension (:data:`IMAGE_EXTENSIONS`)
    are kept, other files are skipped, hidden files (``.name``) and
    sub-folders are ignored. Files named directly are always yielded, even
    with another extension or when missing, so that the reader can say
    what is wrong with them. A file named twice is yielded once.

    Parameters
    ----------
    inputs : iterable of path-like
        Files and folders, in the order wanted.
    skipped : list, optional
        If given, the skipped non-image files found in folders are appended
        to it as they are met, so a caller can count them.

    Yields
    ------
    Path
        One image file at a time.
    """
    seen: set[Path] = set()
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            try:
                entries = sorted(os.scandir(item), key=lambda e: e.name)
            except OSError as err:
                raise ImageReadError(
                    item, f"folder cannot be listed: {err.strerror or err}"
                ) from None
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                try:
                    is_file = entry.is_file()
                except OSError:
                    is_file = False
                if not is_file:
                    continue
                path = Path(entry.path)
                if not is_image_name(path):
                    if skipped is not None:
                        skipped.append(path)
                    continue
                if path not in seen:
                    seen.add(path)
                    yield path
        elif item not in seen:
            seen.add(item)
            yield item


def label_dtype(max_label: int) -> np.dtype:
    """Smallest unsigned dtype, of at least 16 bits, that holds ``max_label``.

    Parameters
    ----------
    max_label : int
        The largest label.

    Returns
    -------
    numpy.dtype
        ``uint16`` up to 65535, ``uint32`` up to 4294967295, else ``uint64``.

    Examples
    --------
    >>> label_dtype(300), label_dtype(70000)
    (dtype('uint16'), dtype('uint32'))
    """
    if max_label < 0:
        raise ValueError(f"labels must not be negative, got a maximum of {max_label}")
    for dtype in (np.uint16, np.uint32, np.uint64):
        if max_label <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError(f"label {max_label} does not fit in 64 bits")


def check_output_folder(folder: str | os.PathLike, create: bool = True) -> Path:
    """Make sure a folder exists (creating it if asked) and can be written to.

    Writability is tested by creating and removing a small hidden file, which
    catches read-only mounts and permission problems alike.

    Parameters
    ----------
    folder : path-like
        The output folder.
    create : bool
        Create it, with missing parents, if it does not exist.

    Returns
    -------
    Path
        The folder.

    Raises
    ------
    OutputFolderError
        If the folder is a file, cannot be created, or cannot be written to.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputFolderError(f"output folder {folder} is a file, not a folder")
    if not folder.exists():
        if not create:
            raise OutputFolderError(f"output folder {folder} does not exist")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutputFolderError(
                f"output folder {folder} cannot be created: {err.strerror or err}"
            ) from None
    probe = folder / f".milseg-write-test-{secrets.token_hex(4)}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(probe)
        raise OutputFolderError(
            f"output folder {folder} is not writable: {err.strerror or err}"
        ) from None
    return folder


def atomic_write(
    path: str | os.PathLike, write: Callable[[BinaryIO], Any], overwrite: bool = False
) -> Path:
    """Write a file so that it appears complete or not at all.

    ``write`` fills a hidden temporary file in the destination folder,
    which is flushed to disk and then moved into place. On any error
    (including a full disk or an interruption) the temporary file is
    removed and the destination is left as it was.

    Parameters
    ----------
    path : path-like
        The destination.
    write : callable
        Called with a binary file object open for writing.
    overwrite : bool
        Replace an existing destination. Without it an existing file is
        never touched, even if it appears while writing.

    Returns
    -------
    Path
        The destination.

    Raises
    ------
    FileExistsError
        If the destination exists and ``overwrite`` is False.
    OSError
        If writing fails (the destination is then unchanged).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, f"{path} is a folder; cannot write a file there")
    if not overwrite and os.path.lexists(path):
        raise FileExistsError(
            errno.EEXIST, f"{path} already exists; not overwritten (use overwrite to replace it)"
        )
    if not path.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, f"folder {path.parent} does not exist")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
    try:
        # "x": never clobbers; the file gets the usual permissions through the umask
        with open(tmp, "xb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _move_no_clobber(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            raise OSError(
                errno.ENOSPC, f"disk full while writing {path}; nothing was written there"
            ) from err
        raise
    return path


def _move_no_clobber(tmp: Path, path: Path) -> None:
    """Move ``tmp`` to ``path`` unless ``path`` exists, atomically where possible."""
    try:
        # a hard link fails if the destination exists, so a file that
        # appeared since the check is never replaced
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(
            errno.EEXIST, f"{path} already exists; not overwritten (use overwrite to replace it)"
        ) from None
    except OSError:
        # file systems without hard links: check, then rename
        if os.path.lexists(path):
            raise FileExistsError(
                errno.EEXIST,
                f"{path} already exists; not overwritten (use overwrite to replace it)",
            ) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def _tiff_writer(data: np.ndarray, metadata: dict | None, compress: bool):
    def write(fh: BinaryIO) -> None:
        import tifffile

        tifffile.imwrite(
            fh,
            data,
            photometric="minisblack",
            compression="zlib" if compress else None,
            metadata=metadata or {},
            bigtiff=data.nbytes > 2**31,
        )

    return write


def write_labels(
    path: str | os.PathLike,
    labels: np.ndarray,
    overwrite: bool = False,
    metadata: dict | None = None,
) -> Path:
    """Write labels to a (compressed) TIFF, atomically.

    Parameters
    ----------
    path : path-like
        Destination, conventionally ``<stem>_labels.tif``.
    labels : ndarray of int, shape (H, W) or (..., H, W)
        0 for background, positive cell labels. Not modified.
    overwrite : bool
        Replace an existing file.
    metadata : dict, optional
        JSON-serialisable facts stored in the TIFF description.

    Returns
    -------
    Path
        The written file. Its dtype is ``uint16`` if the largest label fits,
        else ``uint32`` (see :func:`label_dtype`).

    Raises
    ------
    ValueError
        If the labels are not integers, are negative or are not at least 2D.
    FileExistsError
        If the file exists and ``overwrite`` is False.
    """
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iub":
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    if labels.ndim < 2:
        raise ValueError(f"labels must be at least 2D, got shape {labels.shape}")
    if labels.size and labels.min() < 0:
        raise ValueError("labels must not be negative")
    top = int(labels.max()) if labels.size else 0
    data = labels.astype(label_dtype(top), copy=False)
    return atomic_write(path, _tiff_writer(data, metadata, compress=True), overwrite)


def write_heatmap(
    path: str | os.PathLike,
    heatmap: np.ndarray,
    overwrite: bool = False,
    metadata: dict | None = None,
) -> Path:
    """Write a probability map to a float32 TIFF, atomically.

    Parameters
    ----------
    path : path-like
        Destination, conventionally ``<stem>_heatmap.tif``.
    heatmap : ndarray of float, shape (H, W) or (..., H, W)
        Cell probability per pixel. Not modified.
    overwrite : bool
        Replace an existing file.
    metadata : dict, optional
        JSON-serialisable facts stored in the TIFF description.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ValueError
        If the heatmap is not numeric or not at least 2D.
    FileExistsError
        If the file exists and ``overwrite`` is False.
    """
    heatmap = np.asarray(heatmap)
    if heatmap.dtype.kind not in "fiub":
        raise ValueError(f"heatmap must hold numbers, got dtype {heatmap.dtype}")
    if heatmap.ndim < 2:
        raise ValueError(f"heatmap must be at least 2D, got shape {heatmap.shape}")
    data = heatmap.astype(np.float32, copy=False)
    return atomic_write(path, _tiff_writer(data, metadata, compress=False), overwrite)


def read_tiff_metadata(path: str | os.PathLike) -> dict:
    """The metadata dict stored by :func:`write_labels` or :func:`write_heatmap`.

    Returns an empty dict for TIFFs written by other tools.
    """
    import tifffile

    with tifffile.TiffFile(path) as tif:
        meta = tif.shaped_metadata
    if not meta:
        return {}
    return {k: v for k, v in meta[0].items() if k != "shape"}


@dataclass
class CountsTable:
    """Rows of ``counts.csv``: image name to number of cells, in order.

    Attributes
    ----------
    rows : dict of str to int
        Insertion-ordered; setting an existing image updates it in place.
    """

    rows: dict[str, int] = field(default_factory=dict)

    def update(self, pairs: Iterable[tuple[str, int]]) -> None:
        """Add or replace ``(image, cells)`` pairs."""
        for image, cells in pairs:
            self.rows[str(image)] = int(cells)


def read_counts(path: str | os.PathLike) -> CountsTable:
    """Read a ``counts.csv`` written by :func:`write_counts`.

    Raises
    ------
    ValueError
        If the file does not have the columns ``image,cells`` or a count is
        not a whole number; the message names the file and the line.
    """
    path = Path(path)
    table = CountsTable()
    # utf-8-sig: a table saved again by a spreadsheet may start with a byte-order mark;
    # surrogateescape: file names that are not UTF-8 come back as they were written
    with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != COUNTS_COLUMNS:
            raise ValueError(
                f"{path} is not a counts file: expected the columns "
                f"{','.join(COUNTS_COLUMNS)}, got {','.join(header or [])!r}"
            )
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != 2:
                raise ValueError(f"{path}, line {line}: expected 2 values, got {len(row)}")
            try:
                cells = int(row[1])
            except ValueError:
                raise ValueError(
                    f"{path}, line {line}: cell count {row[1]!r} is not a whole number"
                ) from None
            table.rows[row[0]] = cells
    return table


def write_counts(
    path: str | os.PathLike,
    counts: CountsTable | Iterable[tuple[str, int]],
    overwrite: bool = False,
) -> Path:
    """Write ``counts.csv`` (columns ``image,cells``), atomically.

    Parameters
    ----------
    path : path-like
        Destination.
    counts : CountsTable or iterable of (str, int)
        The rows, in order.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    Path
        The written file.
    """
    rows = counts.rows.items() if isinstance(counts, CountsTable) else counts
    rows = [(str(image), int(cells)) for image, cells in rows]

    def write(fh: BinaryIO) -> None:
        import io as _io

        text = _io.StringIO(newline="")
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(COUNTS_COLUMNS)
        writer.writerows(rows)
        # a file name that is not UTF-8 is written as its own bytes, as the file system has it
        fh.write(text.getvalue().encode("utf-8", "surrogateescape"))

    return atomic_write(path, write, overwrite)

