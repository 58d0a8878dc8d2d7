"""The public segmentation API: image in, heatmap and labelled cells out."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .cells import label_cells
from .heatmap import heatmap_steps
from .params import DEFAULT_INNER, DEFAULT_OUTER, SegmentParams
from .preprocess import (
    CHANNEL_COUNTS,
    ImageError,
    describe,
    plane_shape,
    show_slide_only,
)
from .progress import Progress, Steps, run


@dataclass(frozen=True)
class Segmentation:
    """Result of :func:`segment`.

    Attributes
    ----------
    heatmap : ndarray, shape (..., H, W), float32
        Cell probability per pixel, in ``[0, 1]``.
    labels : ndarray, shape (..., H, W), int32
        0 for background, ``1..count`` for the cells (numbered per plane for stacks).
    count : int or list of int
        Number of cells (one number per plane for stacks).
    diameter : float or None
        The cell diameter in pixels that the heatmap was made for (the one
        given, or the model's). Pass it on to :func:`label_cells` when you
        re-split the heatmap, to get the cells :func:`segment` gives (with
        ``split_joined``, pass the image too).
    """

    heatmap: np.ndarray
    labels: np.ndarray
    count: int | list[int] = field(default=0)
    diameter: float | None = None


def segment(
    image: np.ndarray,
    inner: float = DEFAULT_INNER,
    outer: float = DEFAULT_OUTER,
    model=None,
    diameter: float | None = None,
    rgb: bool | None = None,
    closer_look: bool = True,
    split_joined: bool = False,
) -> Segmentation:
    """Find, separate and count the cells in one image.

    Parameters
    ----------
    image : array-like, shape (H, W) or (H, W, C)
        A smear image: grayscale or 1 to 4 channels; 8- or 16-bit integers
        or floats of any range. Not modified. With an alpha channel, fully
        transparent pixels hold no cell (heatmap 0 there).
    inner : float
        Heatmap level for cell cores (markers), default 0.8.
    outer : float
        Heatmap level for cell extent, default 0.5; must be below ``inner``.
    model : MilModel, path-like or None
        A model from :func:`load_model`, a weights file, or None for the
        bundled model (loaded once and cached).
    diameter : float or None
        Expected cell diameter in pixels; None takes the model's training diameter.
    rgb : bool or None
        Whether the last axis holds colour channels; None guesses.
    closer_look : bool
        Also run the network on the image enlarged twice, and add the small
        cells (platelets) it resolves (:mod:`napari_milseg.small_cells`). On
        by default: it finds about twice as many platelets on the CBC
        validation smears; False takes about half the time (the closer look
        runs the network on four times the pixels).
    split_joined : bool
        Cut each cell that holds two round bodies of red cells pressed
        together (one core over both) into them, reading the image to leave
        white cells whole (:mod:`napari_milseg.joined_cells`). Off by
        default (it adds about 15 ms per 640x480 smear); on the CBC
        validation smears it splits 21 cells, none wrongly by eye.

    Returns
    -------
    Segmentation
        ``.heatmap`` (float32, ``(H, W)``), ``.labels`` (int32, ``(H, W)``) and ``.count``.

    Raises
    ------
    ImageError
        For images that cannot be segmented (wrong shape, empty, too small).
    ValueError
        For bad thresholds or diameter.
    ModelError
        For a model file that cannot be used.

    See Also
    --------
    label_cells : re-split a heatmap with other thresholds, without the network.
    segment_stack : the same for a stack of planes.

    Examples
    --------
    >>> import numpy as np, napari_milseg
    >>> image = np.full((200, 200, 3), 230, np.uint8)
    >>> result = napari_milseg.segment(image)
    >>> result.labels.shape, result.heatmap.dtype
    ((200, 200), dtype('float32'))

    Re-split the heatmap at other thresholds, as the sliders do:

    >>> labels = napari_milseg.label_cells(
    ...     result.heatmap, inner=0.7, outer=0.4, diameter=result.diameter
    ... )
    """
    params = SegmentParams(inner, outer, diameter, closer_look, split_joined)
    return run(segment_steps(image, params, model, rgb))


def segment_steps(
    image: np.ndarray, params: SegmentParams, model=None, rgb: bool | None = None
) -> Steps[Segmentation]:
    """:func:`segment` as a generator that yields :class:`Progress`."""
    from .model import load_model

    plane_shape(image, rgb)  # a bad image fails before the model loads
    model = load_model(model)
    diameter = _diameter_used(params, model)
    image, hidden = show_slide_only(image, rgb)  # transparent, or outside the field of view
    heatmap = yield from heatmap_steps(
        image, model, diameter, rgb, closer_look=params.closer_look
    )
    if hidden is not None:
        heatmap[hidden] = 0.0  # outside the picture: no cells
    labels = label_cells(
        heatmap,
        params.inner,
        params.outer,
        diameter=diameter,
        image=image if params.split_joined else None,
        rgb=rgb,
    )
    return Segmentation(heatmap=heatmap, labels=labels, count=int(labels.max()), diameter=diameter)


def segment_stack(
    stack: np.ndarray,
    inner: float = DEFAULT_INNER,
    outer: float = DEFAULT_OUTER,
    model=None,
    diameter: float | None = None,
    rgb: bool | None = None,
    closer_look: bool = True,
    split_joined: bool = False,
) -> Segmentation:
    """Segment every 2D plane of a stack (time, Z, ...) independently.

    Parameters
    ----------
    stack : array-like, shape (..., H, W) or (..., H, W, C)
        Planes along the leading axes.
    inner, outer, model, diameter, rgb, closer_look, split_joined
        As for :func:`segment`.

    Returns
    -------
    Segmentation
        Heatmap and labels with the stack's plane shape; ``count`` is a list.
    """
    params = SegmentParams(inner, outer, diameter, closer_look, split_joined)
    return run(segment_stack_steps(stack, params, model, rgb))


def stack_planes(shape: tuple[int, ...], rgb: bool) -> tuple[tuple[int, ...], tuple[int, int]]:
    """Split a stack's shape into its leading (plane) shape and 2D plane shape.

    Raises
    ------
    ImageError
        If there are no two spatial axes.
    """
    spatial = shape[:-1] if rgb else shape
    if len(spatial) < 2:
        raise ImageError(f"expected at least a 2D image, got shape {shape}")
    if rgb and shape[-1] not in CHANNEL_COUNTS:
        raise ImageError(f"the last axis should hold 1 to 4 colour channels, got shape {shape}")
    return tuple(spatial[:-2]), (int(spatial[-2]), int(spatial[-1]))


def segment_stack_steps(
    stack: np.ndarray, params: SegmentParams, model=None, rgb: bool | None = None
) -> Steps[Segmentation]:
    """:func:`segment_stack` as a generator; yields one :class:`Progress` per plane."""
    if not hasattr(stack, "shape"):
        stack = np.asarray(stack)
    if rgb is None:
        rgb = stack.ndim >= 3 and stack.shape[-1] in (3, 4)
    lead, (height, width) = stack_planes(tuple(stack.shape), rgb)
    if min(height, width) == 0:
        raise ImageError(f"the image is empty ({describe(stack)})")
    from .model import load_model

    model = load_model(model)
    planes = int(np.prod(lead)) if lead else 1
    heatmap = np.zeros((*lead, height, width), dtype=np.float32)
    labels = np.zeros((*lead, height, width), dtype=np.int32)
    counts = []
    for i, index in enumerate(np.ndindex(*lead) if lead else [()]):
        yield Progress(i, planes, f"plane {i + 1} of {planes}")
        result = run(segment_steps(stack[index], params, model, rgb))
        heatmap[index] = result.heatmap
        labels[index] = result.labels
        counts.append(result.count)
    yield Progress(planes, planes, "done")
    return Segmentation(
        heatmap=heatmap, labels=labels, count=counts, diameter=_diameter_used(params, model)
    )


def _diameter_used(params: SegmentParams, model) -> float:
    """The cell diameter a heatmap is made for: the one asked for, else the model's."""
    return float(params.diameter if params.diameter is not None else model.diameter)
