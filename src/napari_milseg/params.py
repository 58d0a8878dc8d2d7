"""Parameter objects: one source of defaults, validated once.

Every front end (Python API, command line, napari widgets) builds one of
these frozen dataclasses, so a bad value is reported with the same message
everywhere and defaults cannot drift apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Default marker threshold on the heatmap (cell cores).
DEFAULT_INNER = 0.8
#: Default extent threshold on the heatmap (cell outlines).
DEFAULT_OUTER = 0.5


def check_thresholds(inner: float, outer: float) -> None:
    """Raise ``ValueError`` unless ``0 < outer < inner < 1``.

    Parameters
    ----------
    inner : float
        Marker threshold: pixels above it seed one cell per connected core.
    outer : float
        Extent threshold: pixels above it belong to some cell.
    """
    for name, value in (("inner", inner), ("outer", outer)):
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a number between 0 and 1, got {value!r}")
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name} must lie strictly between 0 and 1, got {value}")
    if not outer < inner:
        raise ValueError(
            f"outer ({outer}) must be below inner ({inner}): inner picks the cell cores, "
            "outer the cell extent around them"
        )


def check_diameter(diameter: float | None) -> None:
    """Raise ``ValueError`` unless ``diameter`` is None or a positive, finite number."""
    if diameter is None:
        return
    if (
        isinstance(diameter, bool)
        or not isinstance(diameter, (int, float))
        or not math.isfinite(diameter)
        or diameter <= 0
    ):
        raise ValueError(f"diameter must be a positive number of pixels, got {diameter!r}")
    if diameter < 4:
        raise ValueError(
            f"diameter {diameter} px is too small: cells must be at least 4 pixels across"
        )


@dataclass(frozen=True)
class SegmentParams:
    """How to turn an image into cells.

    Parameters
    ----------
    inner : float
        Heatmap level above which a pixel is part of a cell core (a marker).
    outer : float
        Heatmap level above which a pixel belongs to a cell; must be below ``inner``.
    diameter : float or None
        Expected cell diameter in the image, in pixels. The image is rescaled so
        that cells appear at the size the model was trained on. ``None`` uses
        the model's training diameter.
    """

    inner: float = DEFAULT_INNER
    outer: float = DEFAULT_OUTER
    diameter: float | None = None

    def __post_init__(self) -> None:
        check_thresholds(self.inner, self.outer)
        check_diameter(self.diameter)
