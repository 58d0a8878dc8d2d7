"""Background-only negatives made from positive smears, and a cell-size estimate.

MIL needs negative bags: images with no cell at all. Users rarely have them,
and flat colour fills do not work (the network learns "photo versus
synthetic" and fires everywhere). So negatives are made from the user's own
positives: a rough, unsupervised foreground estimate (distance from the
background colour, relative to the background's own noise) marks what to
remove; the smear's illumination is interpolated under it and its real
background texture is copied in from elsewhere in the same image. What is
left looks like the same slide with the cells taken away.

The same foreground estimate tells MIL where positive bags may be drawn and
gives a first guess of the cell diameter. It uses image content only, never
annotations.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .colour import background_pixels, to_lab

#: Pixels further from the background colour than this many noise widths are foreground.
NOISE_WIDTHS = 6.0
#: The same for training's foreground, lower so that pale red cells (a faint
#: rim, a centre close to the background) count: at 6, about one red cell in
#: twelve was less than half covered, was painted into the synthesized
#: negatives as background and was taught as background in self-training.
TRAINING_NOISE_WIDTHS = 4.0


def _disk(radius: float) -> np.ndarray:
    r = max(1, int(round(radius)))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return (yy * yy + xx * xx) <= r * r


def background_distance(
    rgb: np.ndarray, noise_widths: float = NOISE_WIDTHS
) -> tuple[np.ndarray, float]:
    """Colour distance of each pixel from the slide background.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), float in [0, 1]
        The image.

    Returns
    -------
    distance : ndarray, shape (H, W), float32
        CIELAB distance from the background colour (smoothed over 3x3 pixels).
    threshold : float
        Distance above which a pixel is foreground: ``NOISE_WIDTHS`` robust
        widths of the background's own spread, capped by Otsu's threshold.
    """
    from skimage.filters import threshold_otsu

    lab = to_lab(ndi.uniform_filter(rgb.astype(np.float32), size=(3, 3, 1)))
    surely_background = background_pixels(lab)
    colour = np.median(lab[surely_background], axis=0)
    distance = np.sqrt(((lab - colour) ** 2).sum(-1))
    near = distance[surely_background]
    centre = float(np.median(near))
    spread = 1.4826 * float(np.median(np.abs(near - centre)))
    threshold = centre + noise_widths * max(spread, 0.5)
    if distance.max() > distance.min():
        threshold = min(threshold, float(threshold_otsu(distance)))
    return distance, threshold


def estimate_foreground(
    rgb: np.ndarray, diameter: float | None = None, noise_widths: float = NOISE_WIDTHS
) -> np.ndarray:
    """Rough, unsupervised mask of everything that is not slide background.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), float in [0, 1]
        The image.
    diameter : float or None
        Expected cell diameter in pixels, used to size the clean-up; None
        uses a size-independent clean-up.

    Returns
    -------
    ndarray, shape (H, W), bool
        True on cells (and debris), False on background.
    """
    distance, threshold = background_distance(rgb, noise_widths)
    mask = distance > threshold
    mask = ndi.binary_opening(mask, structure=_disk(2))
    mask = ndi.binary_closing(mask, structure=_disk(3))
    # the 3x3 smoothing spreads every edge by a pixel, which a threshold at a
    # few noise widths picks up: take it back
    mask = ndi.binary_erosion(mask, border_value=1)
    small = 64 if diameter is None else max(16, int(0.01 * np.pi * diameter**2 / 4))
    labels, n = ndi.label(mask)
    if n:
        sizes = np.bincount(labels.ravel())
        mask = (sizes > small)[labels] & mask
    # fill the pale centres of red cells, not the background pockets between cells
    holes = ndi.binary_fill_holes(mask) & ~mask
    hole_labels, n = ndi.label(holes)
    if n:
        limit = 0.5 * np.pi * (diameter or 60) ** 2 / 4
        sizes = np.bincount(hole_labels.ravel())
        mask |= (sizes <= limit)[hole_labels] & holes
    return mask


def estimate_diameter(masks: list[np.ndarray], scales: list[float] | None = None) -> float:
    """Typical cell diameter from foreground masks.

    Single cells are the blobs that are convex (solidity at least 0.9) and
    do not touch the image border; the estimate is the area-weighted median
    of their equivalent diameters, so specks and platelets do not pull it
    down. With fewer than five such blobs it falls back to twice the
    area-weighted median of every blob's largest inscribed disc radius
    (inside a clump that disc still fits about one cell).

    Parameters
    ----------
    masks : list of ndarray, shape (H, W), bool
        Foreground masks from :func:`estimate_foreground`.
    scales : list of float, optional
        Size of each mask relative to its image (masks of shrunk images);
        the estimate is in the images' pixels. Default: all 1.

    Returns
    -------
    float
        Diameter in pixels.

    Raises
    ------
    ValueError
        If no mask has any cell-like blob.
    """
    from skimage.measure import regionprops

    singles, single_areas, radii, areas = [], [], [], []
    for mask, scale in zip(masks, scales or [1.0] * len(masks), strict=True):
        labels, n = ndi.label(mask)
        if n == 0:
            continue
        dist = ndi.distance_transform_edt(mask)
        for region in regionprops(labels, intensity_image=dist):
            if region.area < 20:
                continue
            radii.append(region.intensity_max / scale)
            areas.append(region.area / scale**2)
            y0, x0, y1, x1 = region.bbox
            inside = y0 > 0 and x0 > 0 and y1 < mask.shape[0] and x1 < mask.shape[1]
            if inside and region.solidity >= 0.9:
                singles.append(region.equivalent_diameter_area / scale)
                single_areas.append(region.area / scale**2)
    if len(singles) >= 5:
        return _weighted_median(np.array(singles), np.array(single_areas))
    if not radii:
        raise ValueError(
            "no cell-like objects found to estimate the cell diameter; give the diameter "
            "in pixels instead"
        )
    return 2.0 * _weighted_median(np.array(radii), np.array(areas))


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def background_light(
    rgb: np.ndarray, mask: np.ndarray, diameter: float
) -> tuple[np.ndarray, np.ndarray]:
    """Smooth illumination of the slide, interpolated under the cells.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), float in [0, 1]
        The image.
    mask : ndarray, shape (H, W), bool
        Its foreground (see :func:`estimate_foreground`).
    diameter : float
        Cell diameter in pixels: sets the safety margin around cells and the
        smoothness of the light.

    Returns
    -------
    light : ndarray, shape (H, W, 3), float32
        Background colour and brightness at every pixel.
    background : ndarray, shape (H, W), bool
        Pixels safely away from any foreground.
    """
    rgb = rgb.astype(np.float32)
    background = ~ndi.binary_dilation(mask, structure=_disk(max(2.0, 0.12 * diameter)))
    if background.mean() < 0.02:
        # almost no background to learn from: one colour for the whole image
        source = rgb[background] if background.sum() > 10 else rgb.reshape(-1, 3)
        colour = np.percentile(source, 90, axis=0).astype(np.float32)
        return np.broadcast_to(colour, rgb.shape).copy(), background
    weight = ndi.gaussian_filter(background.astype(np.float32), diameter)
    light = np.stack(
        [ndi.gaussian_filter(rgb[..., c] * background, diameter) for c in range(3)], axis=-1
    ) / np.maximum(weight, 1e-6)[..., None]
    return light.astype(np.float32), background


def synthesize_negative(
    rgb: np.ndarray,
    mask: np.ndarray,
    diameter: float,
    rng: np.random.Generator,
    light: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Remove the cells from an image, keeping its background texture and light.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), float in [0, 1]
        A positive image.
    mask : ndarray, shape (H, W), bool
        Its foreground (see :func:`estimate_foreground`).
    diameter : float
        Cell diameter in pixels.
    rng : numpy.random.Generator
        Source of the texture offsets.
    light : tuple, optional
        ``(light, background)`` from :func:`background_light`, if already computed.

    Returns
    -------
    ndarray, shape (H, W, 3), float32
        The background-only image.
    """
    rgb = rgb.astype(np.float32)
    height, width = mask.shape
    light, background = light if light is not None else background_light(rgb, mask, diameter)
    if background.mean() < 0.02:
        noise = rng.normal(0.0, 0.01, rgb.shape).astype(np.float32)
        return np.clip(light + noise, 0, 1).astype(np.float32)
    residual = np.where(background[..., None], rgb - light, 0.0).astype(np.float32)
    known = background.copy()
    for _ in range(40):
        if known.all():
            break
        dy = int(rng.integers(-height // 2, height // 2 + 1))
        dx = int(rng.integers(-width // 2, width // 2 + 1))
        take = ~known & np.roll(background, (dy, dx), axis=(0, 1))
        if take.any():
            residual[take] = np.roll(residual, (dy, dx), axis=(0, 1))[take]
            known |= take
    if not known.all():
        spread = residual[background].std(axis=0)
        missing = ~known
        residual[missing] = rng.normal(0.0, 1.0, (int(missing.sum()), 3)) * spread
    return np.clip(light + residual, 0.0, 1.0).astype(np.float32)
