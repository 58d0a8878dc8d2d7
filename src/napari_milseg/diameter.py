"""The cell diameter of a set of images, estimated from the images themselves.

The model sees cells at the size it was trained on; smears at another
magnification need their cell diameter. This module estimates it without
labels and without the network: each image's rough colour foreground
(:func:`negatives.estimate_foreground`) is found on a copy at most
``ESTIMATE_SIDE`` pixels across, and the single convex blobs of all images
are pooled into one area-weighted median (:func:`negatives.estimate_diameter`).
Training uses the same estimate for its images.

Pooling is what makes it work: measured on the 300 CBC smears (cells about
100 px) at 1x, 0.6x and 0.4x, single images gave anything from 10 to over
300 px, groups of 12 images 78-130 px, groups of 25 86-121 px and all of
them 102-104 px (``benchmarks/diameter.py``). So estimate from a batch, not
from one image.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .preprocess import ImageError, as_rgb_float, show_slide_only
from .progress import Progress, Steps, run

#: Longest side, in pixels, an image is shrunk to before its foreground is found.
ESTIMATE_SIDE = 640
#: Most images (or planes of a stack) one estimate looks at; more add time, not accuracy.
MAX_IMAGES = 50
#: Below this many images the estimate can be off by half or more.
FEW_IMAGES = 10


def estimate_cell_diameter(images, rgb: bool | None = None) -> float:
    """Typical cell diameter, in pixels, of a set of smear images.

    Parameters
    ----------
    images : ndarray or iterable of ndarray
        One image, shape ``(H, W)`` or ``(H, W, C)``, or several (of any
        sizes). Prefer several: from one image the estimate is rough (see
        the module notes). At most ``MAX_IMAGES`` are used, evenly spaced.
    rgb : bool or None
        Whether the last axis holds colour channels; None guesses per image.

    Returns
    -------
    float
        Cell diameter in pixels of the input images.

    Raises
    ------
    ValueError
        If no image holds any cell-like object, or no image is given.
    ImageError
        For an image that is not a 2D picture (wrong shape, empty).

    See Also
    --------
    segment : takes the result as ``diameter``.

    Examples
    --------
    >>> import napari_milseg                                    # doctest: +SKIP
    >>> d = napari_milseg.estimate_cell_diameter(smears)       # doctest: +SKIP
    >>> napari_milseg.segment(smears[0], diameter=d)           # doctest: +SKIP
    """
    if isinstance(images, np.ndarray) or hasattr(images, "__array_interface__"):
        images = [np.asarray(images)]
    picked = evenly_spaced(list(images), MAX_IMAGES)
    return run(estimate_diameter_steps(picked, len(picked), rgb))


def evenly_spaced(items: list, limit: int) -> list:
    """At most ``limit`` items, spread evenly over the list, in order."""
    if len(items) <= limit:
        return list(items)
    picks = np.linspace(0, len(items) - 1, limit).round().astype(int)
    return [items[i] for i in picks]


def estimate_diameter_steps(
    images: Iterable[np.ndarray],
    total: int | None = None,
    rgb: bool | None = None,
    skip: bool = False,
) -> Steps[float]:
    """:func:`estimate_cell_diameter` as a generator; yields one :class:`Progress` per image.

    ``images`` is consumed one at a time and each is reduced to a small
    mask at once, so a lazy iterable (files read on demand) keeps memory
    bounded. ``total`` is only for the progress reports. With ``skip``,
    images that are not usable pictures are passed over instead of raising
    :class:`ImageError` (a batch reports them itself).
    """
    from .negatives import estimate_diameter

    masks, scales = [], []
    for i, image in enumerate(images):
        yield Progress(i, total or 0, f"estimating the cell diameter: image {i + 1}")
        try:
            mask, scale = foreground_sample(image, rgb)
        except ImageError:
            if skip:
                continue
            raise
        masks.append(mask)
        scales.append(scale)
    if not masks:
        raise ValueError("no usable image to estimate the cell diameter from")
    yield Progress(len(masks), len(masks), "estimating the cell diameter: done")
    return estimate_diameter(masks, scales)


def estimate_rgb_diameter(images: Iterable[np.ndarray]) -> float:
    """:func:`estimate_cell_diameter` of RGB ``float32`` images in ``[0, 1]`` (as training has)."""
    from .negatives import estimate_diameter

    masks, scales = zip(*(rgb_foreground(image) for image in images), strict=True)
    return estimate_diameter(list(masks), list(scales))


def foreground_sample(image: np.ndarray, rgb: bool | None = None) -> tuple[np.ndarray, float]:
    """The colour foreground of an image, found at most ``ESTIMATE_SIDE`` across.

    Returns
    -------
    mask : ndarray, bool
        Foreground of the (possibly shrunk) image.
    scale : float
        Its size relative to the image (1.0 when not shrunk).
    """
    return rgb_foreground(as_rgb_float(show_slide_only(image, rgb)[0], rgb))


def rgb_foreground(image: np.ndarray) -> tuple[np.ndarray, float]:
    """:func:`foreground_sample` of an image already RGB ``float32`` in ``[0, 1]``."""
    from .negatives import estimate_foreground

    scale = min(1.0, ESTIMATE_SIDE / max(image.shape[:2]))
    if scale < 1.0:
        from skimage.transform import resize

        size = (max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale)))
        image = resize(image, size, anti_aliasing=True)
    return estimate_foreground(image), scale


def plane_indices(shape: tuple[int, ...], rgb: bool, limit: int = MAX_IMAGES) -> list[tuple]:
    """Indices of up to ``limit`` evenly spaced 2D planes of an image or stack.

    Parameters
    ----------
    shape : tuple of int
        ``(..., H, W)`` or ``(..., H, W, C)``.
    rgb : bool
        Whether the last axis holds colour channels.

    Raises
    ------
    ImageError
        If the shape holds no 2D image (see :func:`segmentation.stack_planes`).
    """
    from .segmentation import stack_planes

    lead, _ = stack_planes(tuple(shape), rgb)
    return evenly_spaced(list(np.ndindex(*lead)), limit)
