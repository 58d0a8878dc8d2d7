"""Training image sets from the user's folders, files and list files.

Training takes image-level labels only, so a training set is just a list of
images: the positives (with cells) and, optionally, the negatives
(background only). Users name them the way they keep them:

* a **folder**: its image files (by extension, not recursively; see
  :func:`napari_milseg.io.list_images`);
* an **image file**;
* a **list file** (``*.txt``): one image path (or folder) per line,
  relative to the list file's folder, ``#`` starting a comment line. The
  benchmark splits ``benchmarks/splits/cbc-train.txt`` are such lists.

Files that are not images, or cannot be read, are skipped and counted, so a
stray ``Thumbs.db`` does not stop a run; a folder that holds no image file
at all, a missing path or a list that names nothing is an error. Images may
differ in size, dtype and colour mode: training converts them. Stacks
(multi-page TIFF, napari layers with more than two spatial axes) give one
training image per plane, named ``file[i]``.

Nothing here knows about napari or torch.

Examples
--------
>>> from napari_milseg.dataset import read_images, require_positives  # doctest: +SKIP
>>> positives = read_images(["smears/", "more.txt"], "positive")      # doctest: +SKIP
>>> require_positives(positives)                                     # doctest: +SKIP
>>> print(positives.summary())                                       # doctest: +SKIP
52 images from 52 files; 1 non-image file skipped
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .progress import Progress, Steps

#: Suffix of list files (compared lower-case).
LIST_SUFFIX = ".txt"


class DatasetError(ValueError):
    """Inputs that give no usable training set; the message says why and where."""


@dataclass(frozen=True)
class ImageSet:
    """Images read for training, with what was left out.

    Attributes
    ----------
    images : tuple of ndarray, each (H, W) or (H, W, C)
        One 2D image (plane) each, as read: any size, dtype and channel count.
    names : tuple of str
        One per image: the file path as found (``file[i]`` for plane ``i``
        of a stack) or ``layer:<name>`` for a napari layer.
    sources : tuple of str
        The inputs as given (folders, list files, image files, layers).
    files : int
        Files (or layers) that gave at least one image.
    skipped : tuple of str
        Files in the input folders passed over for their extension.
    failed : tuple of (str, str)
        Files that could not be used, with the reason.
    """

    images: tuple[np.ndarray, ...] = ()
    names: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    files: int = 0
    skipped: tuple[str, ...] = ()
    failed: tuple[tuple[str, str], ...] = ()

    def __len__(self) -> int:
        return len(self.images)

    def __add__(self, other: ImageSet) -> ImageSet:
        if not isinstance(other, ImageSet):
            return NotImplemented
        return ImageSet(
            images=self.images + other.images,
            names=self.names + other.names,
            sources=self.sources + other.sources,
            files=self.files + other.files,
            skipped=self.skipped + other.skipped,
            failed=self.failed + other.failed,
        )

    @property
    def left_out(self) -> int:
        """Files skipped or failed."""
        return len(self.skipped) + len(self.failed)

    def summary(self) -> str:
        """One line: how many images from how many files, and what was left out."""
        text = f"{_n(len(self.images), 'image')} from {_n(self.files, 'file')}"
        left_out = self.left_out_text()
        return f"{text}; {left_out}" if left_out else text

    def left_out_text(self) -> str:
        """What was skipped or could not be read, with an example of each ("" if nothing)."""
        parts = []
        if self.skipped:
            parts.append(
                f"{_n(len(self.skipped), 'non-image file')} skipped "
                f"(e.g. {Path(self.skipped[0]).name})"
            )
        if self.failed:
            name, reason = self.failed[0]
            parts.append(
                f"{_n(len(self.failed), 'file')} could not be read "
                f"(e.g. {Path(name).name}: {reason})"
            )
        return "; ".join(parts)

    def describe(self) -> dict:
        """The facts a model card keeps about this set (JSON-serialisable)."""
        return {
            "sources": list(self.sources),
            "images": len(self.images),
            "files_used": self.files,
            "files_skipped": len(self.skipped),
            "files_failed": len(self.failed),
            "failed": [f"{name}: {reason}" for name, reason in self.failed],
            "names": list(self.names),
        }


def left_out_text(
    note: str, dropped, positives: ImageSet | None, negatives: ImageSet | None
) -> str:
    """Training's note on the images it left out, with their file or layer names.

    Parameters
    ----------
    note : str
        The note, ``"<reason>: <images by number>"`` (the message of the
        progress report, or the model card's ``left_out``).
    dropped : sequence of (str, int)
        ``info["left_out"]`` of that report: ``("positive", i)`` pairs.
    positives, negatives : ImageSet or None
        The sets the images came from.

    Returns
    -------
    str
        ``"<reason>: <names>"``, the names comma separated.
    """
    sets = {"positive": positives, "negative": negatives}
    names = []
    for what, i in dropped:
        images = sets.get(what)
        names.append(images.names[i] if images is not None and i < len(images.names)
                     else f"{what} image {i + 1}")
    return f"{note.split(':')[0]}: {', '.join(names)}"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> tuple[list[Path], list[Path]]:
    """The image files named by folders, image files and list files.

    Parameters
    ----------
    inputs : iterable of path-like
        Folders (listed, not recursively), image files, and ``*.txt`` list
        files (one path per line, relative to the list's folder; blank lines
        and lines starting with ``#`` are ignored).

    Returns
    -------
    paths : list of Path
        Files to read, in order, each once. Files named directly (or in a
        list) are kept even if they turn out not to be images, so that the
        reader can say what is wrong with them.
    skipped : list of Path
        Files in the folders passed over for their extension.

    Raises
    ------
    DatasetError
        If an input does not exist, a folder holds no image file, a folder
        cannot be listed, or a list file cannot be read or names nothing.
    """
    from .io import ImageReadError, list_images

    paths: list[Path] = []
    skipped: list[Path] = []
    seen: set[Path] = set()
    for item in inputs:
        item = Path(item)
        if not item.exists():
            kind = "list file" if item.suffix.lower() == LIST_SUFFIX else "path"
            raise DatasetError(f"{kind} {item} does not exist")
        if item.is_file() and item.suffix.lower() == LIST_SUFFIX:
            entries = read_list(item)
        else:
            entries = [item]
        found: list[Path] = []
        skipped_here: list[Path] = []
        try:
            for path in list_images(entries, skipped_here):
                found.append(path)
        except ImageReadError as err:
            raise DatasetError(str(err)) from None
        skipped.extend(skipped_here)
        if not found:
            if item.is_dir():
                message = f"folder {item} holds no image files ({', '.join(_EXT_HINT)})"
            else:
                message = f"list file {item} names no image files"
            if skipped_here:
                message += (
                    f"; {_n(len(skipped_here), 'other file')} there "
                    f"(e.g. {skipped_here[0].name})"
                )
            raise DatasetError(message)
        for path in found:
            key = Path(os.path.normpath(path))
            if key not in seen:
                seen.add(key)
                paths.append(path)
    return paths, skipped


_EXT_HINT = ("JPEG", "PNG", "TIFF", "BMP")


def read_list(path: str | Path) -> list[Path]:
    """Read a ``.txt`` list of image paths, one per line.

    Blank lines and lines starting with ``#`` are skipped; relative paths are
    taken relative to the list's folder, and ``~`` is expanded.

    Parameters
    ----------
    path : str or Path
        The list file.

    Returns
    -------
    list of Path
        The listed paths, in order; whether they exist is not checked.

    Raises
    ------
    DatasetError
        If the file cannot be read, is not text, or names no images.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetError(
            f"list file {path} is not a text file (expected one image path per line)"
        ) from None
    except OSError as err:
        raise DatasetError(f"list file {path} cannot be read: {err.strerror or err}") from None
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        entry = Path(line).expanduser()
        entries.append(entry if entry.is_absolute() else path.parent / entry)
    if not entries:
        raise DatasetError(f"list file {path} names no images (only comments or blank lines)")
    return entries


def planes(data, rgb: bool | None = None) -> list[np.ndarray]:
    """Split an image or a stack into 2D images.

    Parameters
    ----------
    data : array-like, shape (..., H, W) or (..., H, W, C)
        One image or a stack of them.
    rgb : bool or None
        Whether the last axis holds 1 to 4 colour channels; None guesses
        (a 3-D array whose last axis has 1 to 4 entries is taken as one
        colour image).

    Returns
    -------
    list of ndarray, each (H, W) or (H, W, C)
        Views into ``data`` where it is a NumPy array (no copy).

    Raises
    ------
    ImageError
        If ``data`` has fewer than two spatial axes or is empty.
    """
    from .preprocess import ImageError, channels_last, describe

    data = np.asarray(data)
    rgb = channels_last(data, rgb)
    spatial = data.ndim - (1 if rgb else 0)
    if spatial < 2:
        raise ImageError(f"expected a 2D image, got {describe(data)}")
    if data.size == 0:
        raise ImageError(f"the image is empty ({describe(data)})")
    if spatial == 2:
        return [data]
    inner = data.shape[-3:] if rgb else data.shape[-2:]
    return list(data.reshape(-1, *inner))


def _check(image: np.ndarray) -> None:
    """Raise ImageError if training could not use this plane (cheap: samples pixels)."""
    from .preprocess import intensity_range

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # non-finite pixels are fixed in training, not here
        intensity_range(image)


def _planes_of(name: str, data, rgb: bool | None) -> tuple[list[np.ndarray], list[str]]:
    """Planes of one file or layer, checked, with their names; ImageError if unusable."""
    parts = planes(data, rgb)
    for part in parts:
        _check(part)
    if len(parts) == 1:
        return parts, [name]
    return parts, [f"{name}[{i}]" for i in range(len(parts))]


def read_images_steps(
    inputs: Sequence[str | os.PathLike], what: str = "training"
) -> Steps[ImageSet]:
    """Read the images named by folders, files and list files, yielding progress.

    Parameters
    ----------
    inputs : sequence of path-like
        Folders, image files and ``*.txt`` list files (see :func:`expand_inputs`).
    what : str
        What the images are for (``"positive"``, ``"negative"``), used in
        progress and error messages.

    Yields
    ------
    Progress
        One per file read.

    Returns
    -------
    ImageSet
        The images (stack planes split), their names, and the files skipped
        (non-image names in folders) or failed (unreadable, not an image,
        unusable pixels), with reasons.

    Raises
    ------
    DatasetError
        If nothing is named, an input is missing, a folder is empty (see
        :func:`expand_inputs`), or not one readable image was found.
    """
    from .io import ImageReadError, load_image
    from .preprocess import ImageError

    inputs = list(inputs)
    if not inputs:
        raise DatasetError(f"no {what} images given: name a folder, an image file or a list")
    paths, skipped = expand_inputs(inputs)
    images: list[np.ndarray] = []
    names: list[str] = []
    failed: list[tuple[str, str]] = []
    used = 0
    for i, path in enumerate(paths):
        yield Progress(i, len(paths), f"reading {what} images", {"file": path.name})
        try:
            with warnings.catch_warnings():
                # a .png that is really a JPEG is fine for training
                warnings.simplefilter("ignore")
                loaded = load_image(path)
            parts, part_names = _planes_of(str(path), loaded.data, loaded.rgb)
        except ImageReadError as err:
            failed.append((str(path), err.reason))
            continue
        except ImageError as err:
            failed.append((str(path), str(err)))
            continue
        except MemoryError:
            failed.append((str(path), "too large to read into memory"))
            continue
        images.extend(parts)
        names.extend(part_names)
        used += 1
    yield Progress(len(paths), len(paths), f"reading {what} images")
    result = ImageSet(
        images=tuple(images),
        names=tuple(names),
        sources=tuple(str(p) for p in inputs),
        files=used,
        skipped=tuple(str(p) for p in skipped),
        failed=tuple(failed),
    )
    if not images:
        raise DatasetError(
            f"no readable {what} images in {', '.join(result.sources)}: "
            + result.left_out_text()
        )
    return result


def read_images(inputs: Sequence[str | os.PathLike], what: str = "training") -> ImageSet:
    """Read the images named by folders, files and list files (see :func:`read_images_steps`)."""
    from .progress import run

    return run(read_images_steps(inputs, what))


def images_from_arrays(
    arrays: Sequence, names: Sequence[str], rgb: Sequence[bool | None] | None = None,
    source: str = "arrays",
) -> ImageSet:
    """An :class:`ImageSet` from in-memory images (for example napari layers).

    Parameters
    ----------
    arrays : sequence of array-like, each (..., H, W) or (..., H, W, C)
        Images or stacks (split into planes).
    names : sequence of str
        One name per array.
    rgb : sequence of bool or None, optional
        Whether each array's last axis holds colour channels; None guesses.
    source : str
        How the card should name where these came from.

    Returns
    -------
    ImageSet
        Arrays that cannot be used are listed in ``failed`` with the reason.
    """
    from .preprocess import ImageError

    if len(names) != len(arrays):
        raise ValueError(f"got {len(arrays)} arrays but {len(names)} names")
    flags = list(rgb) if rgb is not None else [None] * len(arrays)
    images: list[np.ndarray] = []
    out_names: list[str] = []
    failed: list[tuple[str, str]] = []
    used = 0
    for data, name, flag in zip(arrays, names, flags, strict=True):
        try:
            parts, part_names = _planes_of(name, data, flag)
        except ImageError as err:
            failed.append((name, str(err)))
            continue
        images.extend(parts)
        out_names.extend(part_names)
        used += 1
    return ImageSet(
        images=tuple(images), names=tuple(out_names), sources=(source,) if arrays else (),
        files=used, failed=tuple(failed),
    )


def require_positives(positives: ImageSet, minimum: int | None = None) -> None:
    """Raise :class:`DatasetError` unless there are enough positive images to train.

    Parameters
    ----------
    positives : ImageSet
        The positive images found.
    minimum : int, optional
        Default :data:`napari_milseg.params.MIN_POSITIVES`.
    """
    from .params import MIN_POSITIVES

    minimum = MIN_POSITIVES if minimum is None else minimum
    if len(positives) >= minimum:
        return
    where = f" in {', '.join(positives.sources)}" if positives.sources else ""
    message = (
        f"training needs at least {minimum} positive images (with cells); "
        f"found {len(positives)}{where}"
    )
    if positives.left_out:
        message += f"; {positives.left_out_text()}"
    raise DatasetError(message)
