"""Colour turn: bringing another stain's hues to those the model learned.

A stain of another hue (another lab's recipe, another camera's white
balance) leaves cells and background where they are but changes the
colours the network has learned to call "cell". In CIELAB such a change is
largely a turn of the colour plane: lightness stays, and every hue moves
round the circle. So before the network sees an image, its colours can be
turned about the image's own background colour by a fixed angle: the
background keeps its colour, the distance of every pixel from it (what
:mod:`napari_milseg.negatives` measures) is unchanged, and cells take the
hue they would have had in the training smears.

The angle is part of a model: the bundled model turns by 0 degrees (no
change), and fine-tuning chooses one for the new lab's images without any
labels (:func:`choose_turn_steps`). For each candidate angle the model
segments a few of the images, and the angle whose cell mask agrees best
with the colour foreground (everything that differs from the background,
which no turn changes) wins. Fine-tuning then trains on the turned images,
and every later use of the model turns images the same way.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .progress import Progress, Steps, run

#: Candidate angles, in degrees: the whole circle in steps of 30.
TURNS = tuple(range(-150, 181, 30))
#: Positive images the choice looks at (evenly spread over the set).
SAMPLE_IMAGES = 8
#: Least gain in mean agreement (IoU) for a turn to be taken over no turn: a
#: turn is for stains the model does not find cells in at all, not for fine
#: shades (on the CBC smears themselves +90° agrees 0.045 better than 0°).
MIN_GAIN = 0.1
#: Share of pixels taken as surely background when estimating its colour.
BACKGROUND_SHARE = 0.15


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB of an RGB image in ``[0, 1]``, as float32."""
    from skimage.color import rgb2lab

    return rgb2lab(np.clip(rgb, 0.0, 1.0)).astype(np.float32)


def background_pixels(lab: np.ndarray) -> np.ndarray:
    """Pixels that are surely slide background: the image's flattest extreme.

    Parameters
    ----------
    lab : ndarray, shape (H, W, 3)
        The image in CIELAB.

    Returns
    -------
    ndarray, shape (H, W), bool
        The brightest share of pixels (brightfield) or the darkest
        (fluorescence), whichever is flatter.
    """
    from scipy import ndimage as ndi

    lum = lab[..., 0]
    low, high = np.percentile(lum, [100 * BACKGROUND_SHARE, 100 * (1 - BACKGROUND_SHARE)])
    bright, dark = lum >= high, lum <= low
    # the background is the flat extreme: bright in brightfield, dark in fluorescence
    edges = np.hypot(ndi.sobel(lum, 0), ndi.sobel(lum, 1))
    bright_background = np.median(edges[bright]) <= np.median(edges[dark])
    return bright if bright_background else dark


def background_colour(lab: np.ndarray) -> np.ndarray:
    """Median Lab colour, shape (3,), of :func:`background_pixels`."""
    return np.median(lab[background_pixels(lab)], axis=0)


def turn_colours(
    rgb: np.ndarray, degrees: float, background: np.ndarray | None = None
) -> np.ndarray:
    """Turn an image's colours about its background colour.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), float in [0, 1]
        The image (or a tile of it). Not modified.
    degrees : float
        Angle of the turn in the Lab colour plane (a*, b*), counterclockwise.
    background : ndarray, shape (3,), or None
        The background's Lab colour, the centre of the turn; None estimates
        it from ``rgb`` (:func:`background_colour`). Give the whole image's
        when turning tiles of it, so they match.

    Returns
    -------
    ndarray, shape (H, W, 3), float32 in [0, 1]
        The turned image; colours that fall outside RGB are clipped. An
        angle of 0 returns a float32 copy.
    """
    rgb = np.asarray(rgb, dtype=np.float32)
    if degrees % 360 == 0:
        return rgb.copy()
    from skimage.color import lab2rgb

    lab = to_lab(rgb)
    if background is None:
        background = background_colour(lab)
    a, b = lab[..., 1] - background[1], lab[..., 2] - background[2]
    cos, sin = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    lab[..., 1] = background[1] + cos * a - sin * b
    lab[..., 2] = background[2] + sin * a + cos * b
    with warnings.catch_warnings():
        # colours turned out of the RGB gamut are clipped, as said above
        warnings.filterwarnings("ignore", "Conversion from CIE-LAB", UserWarning)
        out = lab2rgb(lab)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class TurnChoice:
    """The outcome of :func:`choose_turn_steps`.

    Parameters
    ----------
    degrees : float
        The chosen angle.
    agreement : dict of float to float
        Mean IoU of the model's cell mask with the colour foreground, per
        candidate angle.
    images : int
        How many images were looked at.
    """

    degrees: float
    agreement: dict[float, float]
    images: int

    def summary(self) -> str:
        """One line for a progress display."""
        best = max(self.agreement, key=self.agreement.get)
        unturned, top = self.agreement[0.0], self.agreement[best]
        found = f"agreement {unturned:.2f} unturned, {top:.2f} at {best:+g}°"
        if self.degrees % 360:
            return f"colours turned by {self.degrees:+g}° ({found})"
        return f"colours left as they are ({found})"

    def card(self) -> dict[str, Any]:
        """Facts for a model card."""
        return {
            "colour_turn": self.degrees,
            "colour_turn_agreement": {f"{k:g}": round(v, 4) for k, v in self.agreement.items()},
            "colour_turn_images": self.images,
        }


def choose_turn_steps(
    images: list[np.ndarray],
    model,
    diameter: float,
    turns: tuple[float, ...] = TURNS,
    sample: int = SAMPLE_IMAGES,
) -> Steps[TurnChoice]:
    """Choose the colour turn under which a model finds the images' cells best.

    No labels are used. For every candidate angle the model (its own turn
    replaced by the candidate) makes heatmaps of a few of the images; the
    agreement of each mask (heatmap above 0.5) with the image's colour
    foreground (:func:`napari_milseg.negatives.estimate_foreground`, which
    no turn changes) is measured as intersection over union. The angle of
    the best mean agreement wins, unless it beats no turn by less than
    ``MIN_GAIN``.

    Parameters
    ----------
    images : list of ndarray, each (H, W, 3) float in [0, 1]
        Positive images (with cells), at their own scale.
    model : MilModel
        The model to adapt; not modified.
    diameter : float
        Cell diameter in the images, in pixels.
    turns : tuple of float
        Candidate angles in degrees (0 is always tried).
    sample : int
        At most this many images, evenly spread, are used.

    Yields
    ------
    Progress
        One report per heatmap.

    Returns
    -------
    TurnChoice
    """
    from .heatmap import heatmap_steps
    from .negatives import estimate_foreground

    if not images:
        raise ValueError("choosing a colour turn needs at least one image")
    pick = np.unique(np.linspace(0, len(images) - 1, min(sample, len(images))).round().astype(int))
    chosen = [images[i] for i in pick]
    foreground = [estimate_foreground(image, diameter) for image in chosen]
    turns = tuple(sorted({0.0, *(float(t) for t in turns)}))
    total = len(turns) * len(chosen)
    done = 0
    yield Progress(0, total, "choosing a colour turn")
    agreement: dict[float, float] = {}
    for angle in turns:
        turned = replace(model, colour_turn=angle)
        scores = []
        for image, fg in zip(chosen, foreground, strict=True):
            # the network at its own scale: the turn is judged on the cells it finds there
            heat = run(heatmap_steps(image, turned, diameter, closer_look=False))
            mask = heat > 0.5
            union = int((mask | fg).sum())
            scores.append((mask & fg).sum() / union if union else 1.0)
            done += 1
            yield Progress(done, total, f"choosing a colour turn ({angle:+.0f}°)")
        agreement[angle] = float(np.mean(scores))
    best = max(agreement, key=agreement.get)
    if agreement[best] - agreement[0.0] < MIN_GAIN:
        best = 0.0
    return TurnChoice(degrees=best, agreement=agreement, images=len(chosen))

