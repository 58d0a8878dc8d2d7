"""Fixing labelled cells by hand: split a merged cell, merge pieces, delete.

Everything here works on one 2D label image and returns a new array; the
input is never modified, so a front end can diff old and new labels and
record the change as one undoable step. The napari "Edit cells" panel
calls these with the points the user clicked.

Examples
--------
>>> import numpy as np
>>> labels = np.array([[1, 1, 1, 1, 0, 2]])
>>> split_cells(labels, [(0, 0), (0, 3)])
array([[3, 3, 4, 4, 0, 2]])
>>> merge_cells(labels, [1, 2])
array([[1, 1, 1, 1, 0, 1]])
>>> delete_cells(labels, [2])
array([[1, 1, 1, 1, 0, 0]])
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import ndimage as ndi

__all__ = ["cells_at", "delete_cells", "merge_cells", "split_cells"]


def _validate_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(
            f"labels must be 2D (H, W), got shape {labels.shape}; edit the planes of a stack "
            "one by one"
        )
    if labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    return labels


def _validate_points(points, shape: tuple[int, int]) -> np.ndarray:
    """Round ``(N, 2)`` row/column points to pixels; drop those outside ``shape``."""
    points = np.asarray(points, dtype=float)
    if points.size == 0:
        points = points.reshape(0, 2)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2) (row, column), got {points.shape}")
    pixels = np.round(points[np.isfinite(points).all(axis=1)]).astype(np.intp)
    inside = (pixels >= 0).all(axis=1) & (pixels[:, 0] < shape[0]) & (pixels[:, 1] < shape[1])
    return pixels[inside]


def _out_dtype(labels: np.ndarray, top: int) -> np.dtype:
    """``labels``' dtype, widened to int32 (or int64) where new ids need room."""
    dtype = np.result_type(labels.dtype, np.int32)
    if top > np.iinfo(dtype).max:
        dtype = np.dtype(np.int64)
    return dtype


def cells_at(labels: np.ndarray, points) -> np.ndarray:
    """Labels under some points.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        0 for background. Not modified.
    points : array-like, shape (N, 2)
        Row and column of each point, in pixels (rounded to the nearest
        pixel); points outside the image are ignored.

    Returns
    -------
    ndarray of int, shape (M,)
        The distinct non-zero labels hit, sorted.

    Examples
    --------
    >>> cells_at(np.array([[0, 3, 3, 5]]), [(0, 1), (0, 2.4), (0, 0), (0, 9)])
    array([3])
    """
    labels = _validate_labels(labels)
    pixels = _validate_points(points, labels.shape)
    hit = labels[pixels[:, 0], pixels[:, 1]]
    return np.unique(hit[hit != 0])


def split_cells(
    labels: np.ndarray, seeds, heatmap: np.ndarray | None = None
) -> np.ndarray:
    """Split every cell that holds two or more seeds, one piece per seed.

    Each such cell is flooded from its seeds with a watershed restricted to
    the cell: over the inverted heatmap when one is given (so the cut runs
    along the heatmap's valley between the touching cells), else over the
    inverted distance to the cell's edge (so the cut runs along the neck).
    The pieces get new labels above the current maximum, in seed order.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        0 for background. Not modified.
    seeds : array-like, shape (N, 2)
        Row and column of each seed, in pixels. Seeds on the background,
        outside the image, or alone in their cell are ignored; seeds on the
        same pixel count once.
    heatmap : ndarray, shape (H, W), optional
        Cell probability per pixel, as from :func:`napari_milseg.segment`.

    Returns
    -------
    ndarray of int, shape (H, W)
        The new labels (at least int32). Parts of a split cell that no seed
        reaches (disconnected fragments) keep the old label.

    Raises
    ------
    ValueError
        If no cell holds two seeds, or the arrays do not fit together.

    See Also
    --------
    merge_cells, delete_cells

    Examples
    --------
    A dumbbell with a seed in each bulb is cut at its neck:

    >>> labels = np.array([[1, 1, 0, 0, 1, 1],
    ...                    [1, 1, 1, 1, 1, 1],
    ...                    [1, 1, 0, 0, 1, 1]])
    >>> split_cells(labels, [(1, 0), (1, 5)])
    array([[2, 2, 0, 0, 3, 3],
           [2, 2, 2, 3, 3, 3],
           [2, 2, 0, 0, 3, 3]])
    """
    labels = _validate_labels(labels)
    if heatmap is not None:
        heatmap = np.asarray(heatmap)
        if heatmap.shape != labels.shape:
            raise ValueError(
                f"heatmap shape {heatmap.shape} does not match labels shape {labels.shape}"
            )
    pixels = _validate_points(seeds, labels.shape)
    # drop repeated pixels but keep the caller's order, which sets the numbering
    _, first = np.unique(pixels, axis=0, return_index=True)
    pixels = pixels[np.sort(first)]
    under = labels[pixels[:, 0], pixels[:, 1]]
    ids, counts = np.unique(under[under != 0], return_counts=True)
    targets = ids[counts >= 2]
    if targets.size == 0:
        raise ValueError(
            "to split a cell, place at least two points inside it (one per part); "
            f"got {len(pixels)} distinct point(s) in {len(ids)} cell(s)"
        )
    from skimage.segmentation import watershed

    top = int(labels.max())
    out = labels.astype(_out_dtype(labels, top + len(pixels)), copy=True)
    for cell in targets:
        cell_seeds = pixels[under == cell]
        box = ndi.find_objects((labels == cell).astype(np.uint8))[0]
        mask = labels[box] == cell
        markers = np.zeros(mask.shape, dtype=np.int32)
        local = cell_seeds - [box[0].start, box[1].start]
        markers[local[:, 0], local[:, 1]] = np.arange(1, len(local) + 1)
        if heatmap is not None:
            elevation = -np.asarray(heatmap[box], dtype=np.float32)
        else:
            elevation = -ndi.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
        pieces = watershed(elevation, markers, mask=mask)
        region = out[box]
        reached = pieces > 0
        region[reached] = top + pieces[reached]
        top += len(local)
    return out


def merge_cells(labels: np.ndarray, ids: Iterable[int]) -> np.ndarray:
    """Join cells into one, keeping the smallest of their labels.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        0 for background. Not modified.
    ids : iterable of int
        The labels to join; 0 and labels not in the image are ignored.

    Returns
    -------
    ndarray of int, shape (H, W)
        The new labels (at least int32).

    Raises
    ------
    ValueError
        If fewer than two of ``ids`` are cells in ``labels``.

    Examples
    --------
    >>> merge_cells(np.array([[1, 2, 0, 3]]), [3, 2])
    array([[1, 2, 0, 2]])
    """
    labels = _validate_labels(labels)
    ids = list(ids)
    present = _present(labels, ids)
    if present.size < 2:
        raise ValueError(
            f"to merge, pick at least two cells; found {present.size} cell(s) among {list(ids)}"
        )
    out = labels.astype(_out_dtype(labels, 0), copy=True)
    out[np.isin(labels, present)] = present.min()
    return out


def delete_cells(labels: np.ndarray, ids: Iterable[int]) -> np.ndarray:
    """Turn cells into background.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        0 for background. Not modified.
    ids : iterable of int
        The labels to delete; 0 and labels not in the image are ignored.

    Returns
    -------
    ndarray of int, shape (H, W)
        The new labels (at least int32). Other labels keep their numbers.

    Raises
    ------
    ValueError
        If none of ``ids`` is a cell in ``labels``.

    Examples
    --------
    >>> delete_cells(np.array([[1, 2, 0, 3]]), [2, 7])
    array([[1, 0, 0, 3]])
    """
    labels = _validate_labels(labels)
    ids = list(ids)
    present = _present(labels, ids)
    if present.size == 0:
        raise ValueError(f"none of the labels {ids} is a cell in this image")
    out = labels.astype(_out_dtype(labels, 0), copy=True)
    out[np.isin(labels, present)] = 0
    return out


def _present(labels: np.ndarray, ids: Iterable[int]) -> np.ndarray:
    wanted = np.unique(np.asarray(list(ids), dtype=np.int64))
    wanted = wanted[wanted != 0]
    return wanted[np.isin(wanted, labels)]
