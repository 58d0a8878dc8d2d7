"""Checking user images and bringing them to the model's input form.

Users bring JPEG, PNG and TIFF files: RGB or grayscale, 8- or 16-bit, float,
with or without alpha. Everything the network sees goes through
:func:`as_rgb_float`, so one place decides what is accepted and how it is
scaled, and a bad image is reported with a message that names the problem.
"""

from __future__ import annotations

import warnings

import numpy as np

#: Channel counts accepted on a trailing channel axis.
CHANNEL_COUNTS = (1, 2, 3, 4)


class ImageError(ValueError):
    """An image that cannot be segmented; the message says why."""


def describe(image: np.ndarray) -> str:
    """Short ``shape dtype`` description used in error messages."""
    return f"shape {tuple(image.shape)}, dtype {np.dtype(image.dtype)}"


def channels_last(image, rgb: bool | None = None) -> bool:
    """``rgb`` if given, else the guess: a 3D array whose last axis has 1 to 4 entries."""
    if rgb is not None:
        return bool(rgb)
    return len(image.shape) == 3 and image.shape[-1] in CHANNEL_COUNTS


def plane_shape(image: np.ndarray, rgb: bool | None = None) -> tuple[int, int]:
    """The 2D ``(height, width)`` of a single image.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C)
        One plane, optionally with a trailing channel axis of 1 to 4 channels.
    rgb : bool or None
        Whether the last axis holds channels. ``None`` guesses: a 3D array whose
        last axis has 1 to 4 entries is taken as channels.

    Returns
    -------
    tuple of int
        ``(H, W)``.

    Raises
    ------
    ImageError
        For arrays that are not one 2D image (1-D, stacks, 4-D and more).
    """
    if not hasattr(image, "shape"):
        image = np.asarray(image)
    rgb = channels_last(image, rgb)
    if image.ndim == 2 and not rgb:
        return int(image.shape[0]), int(image.shape[1])
    if image.ndim == 3 and rgb:
        if image.shape[-1] not in CHANNEL_COUNTS:
            raise ImageError(
                f"the last axis should hold 1 to 4 colour channels, got {describe(image)}"
            )
        return int(image.shape[0]), int(image.shape[1])
    if image.ndim < 2:
        raise ImageError(f"expected a 2D image, got a {image.ndim}-D array ({describe(image)})")
    raise ImageError(
        f"expected one 2D image (H, W) or (H, W, channels), got {describe(image)}; "
        "a stack of images is segmented plane by plane with segment_stack()"
    )


def transparent_pixels(image: np.ndarray, rgb: bool | None = None) -> np.ndarray | None:
    """Where an image with an alpha channel is fully transparent.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C)
        One plane (see :func:`plane_shape`).
    rgb : bool or None
        Whether the last axis holds channels; ``None`` guesses.

    Returns
    -------
    ndarray of bool, shape (H, W), or None
        True where alpha is 0; None when there is no alpha channel, or when
        no pixel or every pixel is transparent (an alpha channel that says
        nothing: images saved with alpha 0 everywhere are still segmented).
    """
    if not (channels_last(image, rgb) and image.ndim == 3 and image.shape[-1] == 4):
        return None
    clear = np.asarray(image[..., 3]) == 0
    if not clear.any() or clear.all():
        return None
    return clear


def outside_field(image, rgb: bool | None = None) -> np.ndarray | None:
    """Where an image shows no slide: the black surround of a round field of view.

    A photograph taken through a microscope often shows the round field of
    view in a black frame. The network never saw black and reads it as
    stain (on CBC smears framed so, it marked 94 % of the frame as cells).
    The frame is the regions of dim pixels (no colour channel above
    :data:`OUTSIDE_EDGE` of the scale the network sees, see
    :func:`intensity_range`) that touch the image edge and hold dark pixels
    (none above :data:`OUTSIDE_LEVEL`) over at least :data:`OUTSIDE_SHARE`
    of the image. Dark spots inside the field are left alone.

    Parameters
    ----------
    image : array-like, shape (H, W) or (H, W, C)
        One plane (NumPy, or a lazy array: a strided sample is read first,
        and the whole image only when the sample holds dark pixels).
    rgb : bool or None
        Whether the last axis holds channels; ``None`` guesses.

    Returns
    -------
    ndarray of bool, shape (H, W), or None
        True outside the field; None when there is no such frame.
    """
    from scipy import ndimage as ndi

    if np.dtype(image.dtype) == np.bool_:
        return None
    value_range = intensity_range(image, rgb)
    lo, hi = (0.0, 255.0) if value_range is None else value_range
    if _flat(lo, hi):
        return None  # a constant image, read as mid-grey: no frame
    rgb = channels_last(image, rgb)
    height, width = plane_shape(image, rgb)

    def below(part, share: float) -> np.ndarray:
        part = np.asarray(part)
        level = lo + share * (hi - lo)
        if rgb:
            return (part[..., :3] <= level).all(axis=-1)  # NaN is not dark
        return part <= level

    step = sample_step(height, width, EXPOSURE_PIXELS)
    if below(image[::step, ::step], OUTSIDE_LEVEL).mean() < OUTSIDE_SHARE / 2:
        return None  # a frame that covers a share of the image shows in the sample
    rows = max(1, 2**22 // width)
    parts = [np.asarray(image[y : y + rows]) for y in range(0, height, rows)]
    dark = np.concatenate([below(part, OUTSIDE_LEVEL) for part in parts])
    # the frame's soft edge: dim pixels joined to it (a red cell's brightest channel
    # stays far above OUTSIDE_EDGE; a white cell's nucleus that touches the frame
    # may go with it: the darkest nuclei of the CBC smears reach 0.41)
    dim = np.concatenate([below(part, OUTSIDE_EDGE) for part in parts])
    regions, _ = ndi.label(dim, structure=np.ones((3, 3)))
    edge = np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]])
    darkest = np.bincount(regions[dark], minlength=int(regions.max()) + 1)
    frame = np.unique(edge[edge > 0])
    frame = frame[darkest[frame] >= OUTSIDE_SHARE * height * width]
    if frame.size == 0:
        return None
    keep = np.zeros(darkest.size, dtype=bool)
    keep[frame] = True
    return keep[regions]


def hidden_pixels(image, rgb: bool | None = None) -> np.ndarray | None:
    """Pixels that show no slide: fully transparent (:func:`transparent_pixels`)
    or outside the field of view (:func:`outside_field`); None when there are none.
    """
    found = [m for m in (transparent_pixels(image, rgb), outside_field(image, rgb))
             if m is not None]
    if not found:
        return None
    return found[0] if len(found) == 1 else found[0] | found[1]


def show_slide_only(image, rgb: bool | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The image with its :func:`hidden_pixels` filled by :func:`fill_transparent`, and them.

    Returns ``(image, None)``, the image itself, when nothing is hidden.
    """
    hidden = hidden_pixels(image, rgb)
    return (image, None) if hidden is None else (fill_transparent(image, hidden), hidden)


def fill_transparent(image: np.ndarray, transparent: np.ndarray) -> np.ndarray:
    """A copy of an image whose hidden pixels show the slide's background.

    So the network sees an empty slide there instead of the (often black)
    colour under a transparency or around the field of view, which would
    read as stain next to it.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C)
        The image.
    transparent : ndarray of bool, shape (H, W)
        From :func:`transparent_pixels` or :func:`hidden_pixels`.

    Returns
    -------
    ndarray
        The copy; other pixels unchanged, these set to the median colour of
        the brightest quarter of the others (black when there are none).
    """
    image = np.array(image)
    colours = image[..., None] if image.ndim == 2 else image[..., :3]
    opaque = colours[~transparent]
    step = max(1, opaque.shape[0] // 200_000)
    sample = opaque[::step].astype(np.float64)
    finite = np.isfinite(sample).all(axis=1)
    sample = sample[finite] if finite.any() else np.zeros((1, colours.shape[-1]))
    brightness = sample.sum(axis=1)
    bright = sample[brightness >= np.percentile(brightness, 75)]
    colours[transparent] = np.median(bright, axis=0).astype(image.dtype)
    return image


def as_rgb_float(image: np.ndarray, rgb: bool | None = None) -> np.ndarray:
    """Convert one image to RGB ``float32`` in ``[0, 1]``.

    8-bit images are divided by 255, so absolute brightness is kept as the
    model was trained; wider integer images are divided by the largest value
    of their bit depth (10, 12, 14 or 16 bits, see :func:`intensity_range`),
    and float images within 0..1 keep that scale unless they are dim. Other
    images, whose range says little, are stretched between their 0.1 and
    99.9 percentiles. An image whose background is then much dimmer or
    brighter than the model's training smears is brightened or darkened to
    their range (:func:`exposure_gain`). Grayscale is copied to
    three channels, two channels get a zero blue channel, alpha is dropped.
    Non-finite pixels are replaced by the middle of the image's range, with
    a warning.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C)
        The image, ``C`` in 1..4. Not modified.
    rgb : bool or None
        Whether the last axis holds channels; ``None`` guesses (see
        :func:`plane_shape`).

    Returns
    -------
    ndarray, shape (H, W, 3), float32
        The image scaled to ``[0, 1]``.

    Raises
    ------
    ImageError
        If the array is empty, not a 2D image, of a non-numeric dtype, or has
        no finite pixel.
    """
    return to_rgb_float(image, intensity_range(image, rgb), rgb)


#: Bit depths of camera images in 16-bit (or wider) integer files, smallest first.
BIT_DEPTHS = (8, 10, 12, 14, 16)
#: A float image within 0..1 whose 99.9th percentile reaches this is read on
#: the 0..1 scale (as 8-bit / 255); a dimmer one is stretched.
FLOAT_BRIGHT = 0.5
#: The exposure of an image is this percentile of its grey level (see
#: :func:`exposure_gain`): on a bright-field smear, its background.
EXPOSURE_PERCENTILE = 95
#: Images whose exposure lies between these two are read as they are: every
#: one of the 300 CBC smears the bundled model learnt from (0.744 to 0.831)
#: and of the fine-tuning benchmark's new look (0.788 to 0.859). A dimmer
#: image is brightened, a brighter one darkened, to the nearer end.
EXPOSURE_RANGE = (185 / 255, 225 / 255)
#: A pixel may lie outside the field of view when no colour channel exceeds
#: this share of the scale the network sees (the darkest pixel of the CBC
#: smears reaches 0.41 in its brightest channel) ...
OUTSIDE_LEVEL = 0.15
#: ... in a dark region that touches the image edge and covers at least this
#: share of the image (see :func:`outside_field`).
OUTSIDE_SHARE = 0.01
#: The frame takes in the dim pixels joined to it (no channel above this
#: share of the scale): the soft edge of the field of view.
OUTSIDE_EDGE = 0.5
#: An image is brightened at most this many times (a black image stays black).
MAX_GAIN = 4.0
#: The exposure is measured on a strided sample of at most about this many pixels.
EXPOSURE_PIXELS = 20_000


def intensity_range(image: np.ndarray, rgb: bool | None = None) -> tuple[float, float] | None:
    """Check one image and find how to scale it to ``[0, 1]``.

    First the scale the image was stored on: integer images wider than 8
    bits with no negative pixel are read as a camera's 8, 10, 12, 14 or 16
    bits (the smallest depth that holds their 99.9th percentile, brighter
    pixels clip), so they keep their absolute brightness as 8-bit images
    do: a smear saved as 16-bit gives the cells it gives as 8-bit. Float
    images within 0..1 whose 99.9th percentile reaches :data:`FLOAT_BRIGHT`
    are read on that scale (an 8-bit image divided by 255 gives its cells).
    Other floats, negative and wider values are stretched between their 0.1
    and 99.9 percentiles, as is a constant image (which becomes mid-grey).

    Then the exposure (see :func:`exposure_gain`): an image whose
    background, on that scale, is dimmer or brighter than the smears the
    model learnt from is brightened or darkened to their range, so a smear
    photographed with a shorter or longer exposure gives the cells of a
    well-exposed one.

    Works on NumPy arrays and on lazy arrays (dask, zarr) that support
    slicing: only strided samples of at most about four million values are
    read.

    Parameters
    ----------
    image : array-like, shape (H, W) or (H, W, C)
        The image.
    rgb : bool or None
        Whether the last axis holds channels.

    Returns
    -------
    tuple of float or None
        ``(low, high)`` to map to 0 and 1, or None for boolean images and
        for 8-bit images of a usual exposure, which are divided by 255.

    Raises
    ------
    ImageError
        As :func:`as_rgb_float`.
    """
    if not hasattr(image, "shape") or not hasattr(image, "dtype"):
        image = np.asarray(image)
    if int(np.prod(image.shape)) == 0:
        raise ImageError(f"the image is empty ({describe(image)})")
    if np.dtype(image.dtype).kind not in "buif":
        raise ImageError(f"pixels must be numbers, got {describe(image)}")
    plane_shape(image, rgb)
    if image.dtype == np.bool_:
        return None
    stored = (0.0, 255.0) if image.dtype == np.uint8 else _stored_range(image)
    gain = exposure_gain(image, stored, rgb)
    if gain == 1.0:
        return None if image.dtype == np.uint8 else stored
    lo, hi = stored
    return lo, lo + (hi - lo) / gain


def _stored_range(image) -> tuple[float, float]:
    """The scale an image other than 8-bit was stored on (see :func:`intensity_range`)."""
    step = max(1, int(np.sqrt(image.shape[0] * image.shape[1] / 1_000_000)))
    sample = np.asarray(image[::step, ::step]).astype(np.float32, copy=False)
    finite = np.isfinite(sample)
    if not finite.any():
        raise ImageError("the image has no finite pixel (all NaN or infinite)")
    values = sample[finite]
    lo, hi = np.percentile(values, [0.1, 99.9])
    kind = np.dtype(image.dtype).kind
    if kind in "ui" and sample.min() >= 0 and sample.max() > sample.min():
        # a camera's 8 to 16 bits in a wider integer: keep the absolute brightness, as
        # for 8-bit images, so the same smear scores the same whatever it was saved as
        for bits in BIT_DEPTHS:
            if hi <= 2**bits - 1:
                return 0.0, float(2**bits - 1)
    if kind == "f" and lo >= 0 and FLOAT_BRIGHT <= hi and values.max() <= 1:
        return 0.0, 1.0  # a float picture on the usual 0..1 scale (8-bit / 255)
    return float(lo), float(hi)


def exposure_gain(image, value_range: tuple[float, float], rgb: bool | None = None) -> float:
    """How many times to brighten an image (below 1: darken) to a usual exposure.

    The exposure is the :data:`EXPOSURE_PERCENTILE` th percentile of the
    image's grey level (the mean of its colour channels, alpha left out) once
    ``value_range`` is mapped to 0..1: on a bright-field smear, the
    background's brightness. Between the two ends of
    :data:`EXPOSURE_RANGE` the gain is 1; outside, it brings the exposure
    to the nearer end, brightening at most :data:`MAX_GAIN` times.

    Parameters
    ----------
    image : array-like, shape (H, W) or (H, W, C)
        The image (only a strided sample of about :data:`EXPOSURE_PIXELS`
        pixels is read).
    value_range : tuple of float
        The ``(low, high)`` the image was stored between.
    rgb : bool or None
        Whether the last axis holds channels.

    Returns
    -------
    float
        The gain, 1.0 for a usual exposure or a constant image.

    Examples
    --------
    A smear photographed with half the usual exposure is brightened:

    >>> import numpy as np
    >>> smear = np.full((40, 40, 3), 100, np.uint8)
    >>> round(exposure_gain(smear, (0.0, 255.0)), 2)
    1.85
    >>> exposure_gain(smear * 2, (0.0, 255.0))
    1.0
    """
    lo, hi = value_range
    if _flat(lo, hi):
        return 1.0
    height, width = plane_shape(image, rgb)
    step = sample_step(height, width, EXPOSURE_PIXELS)
    sample = np.asarray(image[::step, ::step]).astype(np.float32)
    grey = sample[..., :3].mean(axis=-1) if channels_last(image, rgb) else sample
    with np.errstate(invalid="ignore"):
        grey = np.clip((grey - lo) / (hi - lo), 0.0, 1.0)
    grey = grey[np.isfinite(grey)]
    if grey.size == 0:
        return 1.0
    level = float(np.percentile(grey, EXPOSURE_PERCENTILE))
    dim, bright = EXPOSURE_RANGE
    if dim <= level <= bright:
        return 1.0
    return (dim if level < dim else bright) / max(level, dim / MAX_GAIN)


def _flat(lo: float, hi: float) -> bool:
    """Whether a value range is empty: a constant image, which is read as mid-grey."""
    return hi - lo <= 1e-12 * max(1.0, abs(hi))


def sample_step(height: int, width: int, pixels: int) -> int:
    """The stride, in both axes, that samples at most about ``pixels`` of an image."""
    return max(1, int(np.ceil(np.sqrt(height * width / pixels))))


def to_rgb_float(
    image: np.ndarray, value_range: tuple[float, float] | None, rgb: bool | None = None
) -> np.ndarray:
    """Scale an image, or a tile of one, with a range from :func:`intensity_range`.

    Parameters
    ----------
    image : array-like, shape (h, w) or (h, w, C)
        The image or a tile of it.
    value_range : tuple of float or None
        From :func:`intensity_range` of the whole image, so tiles match.
    rgb : bool or None
        Whether the last axis holds channels.

    Returns
    -------
    ndarray, shape (h, w, 3), float32
    """
    image = np.asarray(image)
    if not channels_last(image, rgb):
        image = image[..., None]
    if image.shape[-1] == 4:
        image = image[..., :3]
    if value_range is None:
        scale = 255.0 if image.dtype == np.uint8 else 1.0
        out = image.astype(np.float32) / scale
    else:
        out = image.astype(np.float32)
        finite = np.isfinite(out)
        if not finite.all():
            warnings.warn(
                f"{int((~finite).any(axis=-1).sum())} NaN or infinite pixels were replaced by "
                "the image's middle grey",
                stacklevel=2,
            )
            out = np.where(finite, out, np.float32(sum(value_range) / 2))
        lo, hi = value_range
        if _flat(lo, hi):
            # a constant image: nothing to stretch, keep it mid-grey
            out = np.full(out.shape, 0.5, dtype=np.float32)
        else:
            out = np.clip((out - lo) / (hi - lo), 0.0, 1.0)
    if out.shape[-1] == 1:
        out = np.repeat(out, 3, axis=-1)
    elif out.shape[-1] == 2:
        out = np.concatenate([out, np.zeros_like(out[..., :1])], axis=-1)
    return np.ascontiguousarray(out, dtype=np.float32)
