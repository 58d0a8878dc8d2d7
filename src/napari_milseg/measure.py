"""Per-cell measurements: the numbers a user came for, as plain columns.

:func:`cell_table` turns a label image (and optionally the heatmap and the
image) into a dict of equal-length NumPy columns, one row per cell, in
physical units when a pixel size is given. The napari panel shows it and
stores it as the labels layer's ``features``; :func:`write_csv` saves it.
No pandas needed.

Examples
--------
>>> import numpy as np
>>> labels = np.zeros((4, 6), int)
>>> labels[1:3, 1:3] = 1
>>> labels[0:4, 4:6] = 2
>>> table = cell_table(labels, scale=(0.5, 0.5))
>>> table["label"], table["area"]
(array([1, 2]), array([1., 2.]))
>>> summary(table)["count"]
2
"""

from __future__ import annotations

import csv
import io as _stringio
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: Columns of :func:`cell_table`, in order (``plane`` comes first for stacks).
COLUMNS = (
    "label",
    "area",
    "perimeter",
    "equivalent_diameter",
    "eccentricity",
    "solidity",
    "mean_probability",
    "mean_intensity",
)

__all__ = ["COLUMNS", "cell_table", "summary", "table_to_csv", "write_csv"]


def _check_scale(scale: Sequence[float] | None) -> tuple[float, float]:
    if scale is None:
        return 1.0, 1.0
    scale = tuple(float(s) for s in scale)
    if len(scale) < 2 or not all(math.isfinite(s) and s > 0 for s in scale[-2:]):
        raise ValueError(f"scale must end in two positive pixel sizes (row, column), got {scale}")
    return scale[-2], scale[-1]


def _grey(image: np.ndarray, shape: tuple[int, ...], name: str = "image") -> np.ndarray:
    """``image`` as one float value per pixel of ``shape`` (colour channels averaged)."""
    image = np.asarray(image)
    if image.shape == shape:
        return image.astype(np.float64, copy=False)
    channels_last = image.ndim == len(shape) + 1 and image.shape[:-1] == shape
    if channels_last and image.shape[-1] in (1, 2, 3, 4):
        # alpha says nothing about the cell
        channels = image[..., :3] if image.shape[-1] == 4 else image
        return channels.astype(np.float64).mean(axis=-1)
    raise ValueError(f"{name} shape {image.shape} does not match labels shape {shape}")


def cell_table(
    labels: np.ndarray,
    heatmap: np.ndarray | None = None,
    image: np.ndarray | None = None,
    scale: Sequence[float] | None = None,
) -> dict[str, np.ndarray]:
    """Measure every cell.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W) or (..., H, W)
        0 for background; for stacks, every 2D plane is measured on its own.
        Not modified.
    heatmap : ndarray, shape like ``labels``, optional
        Cell probability per pixel; gives ``mean_probability`` (else NaN).
    image : ndarray, shape like ``labels`` or with a trailing channel axis, optional
        The image; gives ``mean_intensity`` (colour channels averaged, alpha
        ignored; else NaN).
    scale : sequence of float, optional
        Pixel size; its last two entries are the row and column spacing.
        Lengths are multiplied by it and areas by the product (default 1).

    Returns
    -------
    dict of str to ndarray
        Equal-length columns, one row per cell, sorted by plane then label:
        ``label`` (int), ``area``, ``perimeter`` (the boundary length, holes
        included: scikit-image's ``perimeter`` for square pixels, the length
        of the sub-pixel contour for non-square ones), ``equivalent_diameter``
        (of the disc with the same area), ``eccentricity`` (0 for a disc,
        towards 1 for elongated cells), ``solidity`` (area over convex-hull area), and
        ``mean_probability`` and ``mean_intensity`` (NaN when not given).
        Stacks get a leading ``plane`` column (the flat plane index).

    Raises
    ------
    ValueError
        If ``labels`` is not an integer array of at least 2D, or the other
        arrays or ``scale`` do not fit it.

    See Also
    --------
    summary : count and mean/median size.
    write_csv : save the table.
    """
    labels = np.asarray(labels)
    if labels.ndim < 2:
        raise ValueError(f"labels must be at least 2D, got shape {labels.shape}")
    if labels.dtype.kind not in "iub":
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    spacing = _check_scale(scale)
    probability = None if heatmap is None else _grey(heatmap, labels.shape, "heatmap")
    intensity = None if image is None else _grey(image, labels.shape)
    lead = labels.shape[:-2]
    parts = []
    for flat, index in enumerate(np.ndindex(*lead)):
        part = _plane_table(
            labels[index],
            None if probability is None else probability[index],
            None if intensity is None else intensity[index],
            spacing,
        )
        if lead:
            part = {"plane": np.full(len(part["label"]), flat, dtype=np.int64), **part}
        parts.append(part)
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def _plane_table(
    labels: np.ndarray,
    probability: np.ndarray | None,
    intensity: np.ndarray | None,
    spacing: tuple[float, float],
) -> dict[str, np.ndarray]:
    from skimage.measure import regionprops

    isotropic = math.isclose(spacing[0], spacing[1], rel_tol=1e-9)
    rows = {name: [] for name in COLUMNS}
    for region in regionprops(labels.astype(np.int64, copy=False), spacing=spacing):
        mask = region.image
        box = region.slice
        rows["label"].append(region.label)
        rows["area"].append(region.area)
        if isotropic:
            rows["perimeter"].append(region.perimeter)  # already in scaled units
        else:
            rows["perimeter"].append(_contour_length(mask, spacing))
        rows["equivalent_diameter"].append(region.equivalent_diameter_area)
        rows["eccentricity"].append(region.eccentricity)
        rows["solidity"].append(region.solidity)
        for name, values in (("mean_probability", probability), ("mean_intensity", intensity)):
            rows[name].append(np.nan if values is None else float(values[box][mask].mean()))
    table = {name: np.asarray(rows[name], dtype=np.float64) for name in COLUMNS[1:]}
    return {"label": np.asarray(rows["label"], dtype=np.int64), **table}


def _contour_length(mask: np.ndarray, spacing: tuple[float, float]) -> float:
    """Boundary length of a mask with anisotropic pixels (sub-pixel contours)."""
    from skimage.measure import find_contours

    total = 0.0
    for contour in find_contours(np.pad(mask, 1).astype(np.float32), 0.5):
        steps = np.diff(contour, axis=0) * spacing
        total += float(np.hypot(steps[:, 0], steps[:, 1]).sum())
    return total


def summary(table: dict[str, np.ndarray]) -> dict[str, float]:
    """Count and size summary of a :func:`cell_table`.

    Returns
    -------
    dict
        ``count`` (int), ``mean_area``, ``median_area``, ``mean_diameter``
        and ``median_diameter`` (NaN without cells).
    """
    area = np.asarray(table["area"], dtype=np.float64)
    diameter = np.asarray(table["equivalent_diameter"], dtype=np.float64)
    count = int(area.size)

    def stat(func, values):
        return float(func(values)) if count else math.nan

    return {
        "count": count,
        "mean_area": stat(np.mean, area),
        "median_area": stat(np.median, area),
        "mean_diameter": stat(np.mean, diameter),
        "median_diameter": stat(np.median, diameter),
    }


def _cell(value) -> str:
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    value = float(value)
    # empty cells read back as missing in pandas and spreadsheets alike
    return "" if math.isnan(value) else repr(value)


def table_to_csv(table: dict[str, np.ndarray]) -> str:
    """A :func:`cell_table` as CSV text: a header row, then one row per cell.

    Integers are written as integers, floats at full precision, NaN as an
    empty field.
    """
    names = list(table)
    columns = [np.asarray(table[name]) for name in names]
    lengths = {len(c) for c in columns}
    if len(lengths) > 1:
        raise ValueError(f"table columns differ in length: {sorted(lengths)}")
    out = _stringio.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    for row in zip(*columns, strict=True):
        writer.writerow([_cell(v) for v in row])
    return out.getvalue()


def write_csv(
    path: str | os.PathLike, table: dict[str, np.ndarray], overwrite: bool = False
) -> Path:
    """Write a :func:`cell_table` to a CSV file, atomically.

    Parameters
    ----------
    path : path-like
        Destination, conventionally ``*.csv``.
    table : dict of str to ndarray
        Equal-length columns.
    overwrite : bool
        Replace an existing file; without it an existing file is never touched.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    FileExistsError
        If the file exists and ``overwrite`` is False.
    """
    from .io import atomic_write

    data = table_to_csv(table).encode("utf-8")
    return atomic_write(path, lambda fh: fh.write(data), overwrite=overwrite)
