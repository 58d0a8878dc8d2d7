"""Image to cell-probability heatmap, tile by tile.

The image is cut into overlapping tiles (one tile for a usual 640x480
smear), each tile is rescaled so cells appear at the network's cell size,
scored by the network, and its probabilities are resized back and blended
into the full-resolution heatmap with weights that sum to one. Memory is
bounded by the tile size, apart from the output array.
"""

from __future__ import annotations

import math

import numpy as np

from .params import check_diameter
from .preprocess import ImageError, intensity_range, plane_shape, sample_step, to_rgb_float
from .progress import Progress, Steps, run

#: Tile side at network scale, in pixels (a multiple of 16).
TILE = 512
#: Overlap between neighbouring tiles at network scale, in pixels.
OVERLAP = 96
#: Smallest image side, in expected cell diameters.
MIN_SIDE_DIAMETERS = 1.0
#: Most pixels (a strided sample) used to find the background colour that a
#: model's colour turn is made about.
SAMPLE_PIXELS = 100_000


def heatmap_steps(
    image: np.ndarray,
    model=None,
    diameter: float | None = None,
    rgb: bool | None = None,
    tile: int = TILE,
    closer_look: bool = True,
) -> Steps[np.ndarray]:
    """Cell-probability heatmap of one image, as a progress generator.

    Parameters
    ----------
    image : array-like, shape (H, W) or (H, W, C)
        One image (NumPy, or lazy dask/zarr arrays read tile by tile).
    model : MilModel, path or None
        The model; None takes the bundled one.
    diameter : float or None
        Expected cell diameter in pixels; None takes the model's training diameter.
    rgb : bool or None
        Whether the last axis holds colour channels; None guesses.
    tile : int
        Tile side at network scale.
    closer_look : bool
        Also run the network on every tile enlarged twice and lift the
        small cells (platelets) it resolves into the heatmap (see
        :mod:`napari_milseg.small_cells`). On by default, as in
        :func:`napari_milseg.segment`; it costs four times the network's
        work again, and a second map of the image's size in memory. False
        gives the network's map at its own scale alone.

    Yields
    ------
    Progress
        One report per tile.

    Returns
    -------
    ndarray, shape (H, W), float32
        Probability, in ``[0, 1]``, that each pixel belongs to a cell.
    """
    check_diameter(diameter)
    height, width = plane_shape(image, rgb)
    value_range = intensity_range(image, rgb)

    import torch

    from .colour import turn_colours
    from .model import NET_DIAMETER, load_model

    model = load_model(model)
    if diameter is None:
        diameter = model.diameter
    scale = NET_DIAMETER / float(diameter)
    min_side = MIN_SIDE_DIAMETERS * diameter
    if min(height, width) < min_side:
        raise ImageError(
            f"the image ({width}x{height} px) is smaller than one expected cell "
            f"({diameter:g} px across); give a smaller cell diameter if the cells are smaller"
        )
    turn = model.colour_turn
    background = _background_colour(image, value_range, rgb) if turn % 360 else None
    spans_y = tile_spans(height, tile / scale, OVERLAP / scale)
    spans_x = tile_spans(width, tile / scale, OVERLAP / scale)
    weights_y = blend_weights(height, spans_y)
    weights_x = blend_weights(width, spans_x)
    out = np.zeros((height, width), dtype=np.float32)
    closer = None
    if closer_look:
        from .small_cells import ENLARGE, add_small_cells

        closer = np.zeros((height, width), dtype=np.float32)
    total = len(spans_y) * len(spans_x)
    done = 0
    yield Progress(0, total, "heatmap")
    with torch.inference_mode():
        for (y0, y1), wy in zip(spans_y, weights_y, strict=True):
            for (x0, x1), wx in zip(spans_x, weights_x, strict=True):
                crop = to_rgb_float(image[y0:y1, x0:x1], value_range, rgb)
                if background is not None:
                    crop = turn_colours(crop, turn, background)
                weight = wy[:, None] * wx[None, :]
                out[y0:y1, x0:x1] += predict_tile(model, crop, scale) * weight
                if closer is not None:
                    closer[y0:y1, x0:x1] += predict_tile(model, crop, ENLARGE * scale) * weight
                done += 1
                yield Progress(done, total, "heatmap")
    np.clip(out, 0.0, 1.0, out=out)
    if closer is not None:
        np.clip(closer, 0.0, 1.0, out=closer)
        out = add_small_cells(out, closer, float(diameter))
    return out


def _background_colour(image, value_range, rgb) -> np.ndarray:
    """Background Lab colour of a whole image, from a strided sample of at most ~100k pixels."""
    from .colour import background_colour, to_lab

    height, width = plane_shape(image, rgb)
    step = sample_step(height, width, SAMPLE_PIXELS)
    sample = to_rgb_float(image[::step, ::step], value_range, rgb)
    return background_colour(to_lab(sample))


def predict_heatmap(
    image: np.ndarray,
    model=None,
    diameter: float | None = None,
    rgb: bool | None = None,
    closer_look: bool = True,
) -> np.ndarray:
    """Cell-probability heatmap of one image (see :func:`heatmap_steps`)."""
    return run(heatmap_steps(image, model, diameter, rgb, closer_look=closer_look))


def predict_tile(model, rgb: np.ndarray, scale: float) -> np.ndarray:
    """Run the network on one RGB tile and return probabilities at tile size.

    Parameters
    ----------
    model : MilModel
        The model.
    rgb : ndarray, shape (h, w, 3), float32 in [0, 1]
        The tile.
    scale : float
        Resize factor to network scale.

    Returns
    -------
    ndarray, shape (h, w), float32
    """
    import torch
    from torch.nn import functional as F

    from .model import INPUT_MULTIPLE, OUTPUT_STRIDE, normalise

    h, w = rgb.shape[:2]
    x = torch.from_numpy(rgb).to(model.device).permute(2, 0, 1)[None]
    hn, wn = max(1, round(h * scale)), max(1, round(w * scale))
    if (hn, wn) != (h, w):
        x = F.interpolate(
            x, size=(hn, wn), mode="bilinear", align_corners=False, antialias=scale < 1
        )
    ph, pw = (-hn) % INPUT_MULTIPLE, (-wn) % INPUT_MULTIPLE
    x = normalise(x)
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    if x.device.type == "cpu":
        # oneDNN's convolutions and max-pooling run faster on channels-last
        # tensors (the same numbers, to float rounding; benchmarks/speed.py)
        x = x.contiguous(memory_format=torch.channels_last)
    logits = model.net(x)
    logits = F.interpolate(logits, scale_factor=OUTPUT_STRIDE, mode="bilinear", align_corners=False)
    logits = logits[..., :hn, :wn]
    if (hn, wn) != (h, w):
        logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
    return torch.sigmoid(logits)[0, 0].float().cpu().numpy()


def tile_spans(length: int, tile: float, overlap: float) -> list[tuple[int, int]]:
    """Split ``range(length)`` into overlapping spans of at most ``tile`` pixels.

    As few spans as the overlap allows are used, and they are made only as
    long as needed to cover ``length`` with that overlap, so no pixel is
    computed more often than necessary.

    Parameters
    ----------
    length : int
        Image side in pixels.
    tile, overlap : float
        Longest span and least overlap between neighbours, in pixels.

    Returns
    -------
    list of (start, stop)
        Spans of equal length covering ``[0, length)``, evenly spread.

    Examples
    --------
    >>> tile_spans(100, 200, 10)
    [(0, 100)]
    >>> tile_spans(100, 60, 20)
    [(0, 60), (40, 100)]
    >>> tile_spans(100, 80, 20)
    [(0, 60), (40, 100)]
    """
    size = int(math.ceil(tile))
    if length <= size:
        return [(0, length)]
    overlap = min(int(math.ceil(overlap)), size // 2)
    count = int(math.ceil((length - overlap) / (size - overlap)))
    size = min(size, int(math.ceil((length + (count - 1) * overlap) / count)))
    starts = np.round(np.linspace(0, length - size, count)).astype(int)
    return [(int(s), int(s) + size) for s in starts]


def blend_weights(length: int, spans: list[tuple[int, int]]) -> list[np.ndarray]:
    """Per-span 1-D weights that ramp down toward inner tile edges and sum to one.

    Parameters
    ----------
    length : int
        Image side in pixels.
    spans : list of (start, stop)
        From :func:`tile_spans`.

    Returns
    -------
    list of ndarray
        ``weights[i]`` has length ``stop - start``; at every pixel the
        weights of the spans covering it add up to 1.
    """
    raw = []
    total = np.zeros(length, dtype=np.float64)
    for i, (start, stop) in enumerate(spans):
        pos = np.arange(start, stop, dtype=np.float64) + 0.5
        w = np.ones(stop - start)
        if i > 0:
            ramp = spans[i - 1][1] - start
            w = np.minimum(w, (pos - start) / max(ramp, 1))
        if i < len(spans) - 1:
            ramp = stop - spans[i + 1][0]
            w = np.minimum(w, (stop - pos) / max(ramp, 1))
        w = np.maximum(w, 1e-6)
        raw.append(w)
        total[start:stop] += w
    return [(w / total[s:e]).astype(np.float32) for w, (s, e) in zip(raw, spans, strict=True)]
