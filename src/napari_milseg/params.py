"""Parameter objects: one source of defaults, validated once.

Every front end (Python API, command line, napari widgets) builds one of
these frozen dataclasses, so a bad value is reported with the same message
everywhere and defaults cannot drift apart.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields

#: Default marker threshold on the heatmap (cell cores).
DEFAULT_INNER = 0.8
#: Default extent threshold on the heatmap (cell outlines).
DEFAULT_OUTER = 0.5


def _real(value) -> bool:
    """Whether ``value`` is a finite real number (NumPy's included), not a bool."""
    return (
        not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
    )


def _plain_numbers(params) -> None:
    """Turn NumPy scalars in a frozen parameter object into Python numbers.

    So that ``np.float32(0.8)`` from a script passes the checks and the
    values can be written to a model card (JSON) as they are.
    """
    for f in fields(params):
        value = getattr(params, f.name)
        if isinstance(value, numbers.Number) and type(value) not in (bool, int, float):
            if hasattr(value, "item"):
                object.__setattr__(params, f.name, value.item())


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
        if not _real(value):
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
    if not _real(diameter) or diameter <= 0:
        raise ValueError(f"diameter must be a positive number of pixels, got {diameter!r}")
    if diameter < 4:
        raise ValueError(
            f"diameter {diameter} px is too small: cells must be at least 4 pixels across"
        )


def diameter_from_text(text: str) -> float | None:
    """A cell diameter typed into a field: None for empty or 0 (use the default).

    Raises
    ------
    ValueError
        If the text is not a number, or not a usable diameter (see
        :func:`check_diameter`).
    """
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"cell diameter must be a number of pixels, got {text!r}") from None
    if value == 0:
        return None
    check_diameter(value)
    return value


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
    closer_look : bool
        Also look at the image enlarged twice, for small cells such as
        platelets (see :mod:`napari_milseg.small_cells`). On by default: it
        finds about twice as many platelets, with five times the network's
        work (the network also runs on four times the pixels); False is
        faster.
    split_joined : bool
        Cut a cell that holds two round bodies of red cells pressed
        together into them (see :mod:`napari_milseg.joined_cells`). Off by
        default: it adds about 15 ms to each split of a 640x480 smear.
    """

    inner: float = DEFAULT_INNER
    outer: float = DEFAULT_OUTER
    diameter: float | None = None
    closer_look: bool = True
    split_joined: bool = False

    def __post_init__(self) -> None:
        _plain_numbers(self)
        check_thresholds(self.inner, self.outer)
        check_diameter(self.diameter)
        if not isinstance(self.closer_look, bool):
            raise ValueError(f"closer_look must be True or False, got {self.closer_look!r}")
        if not isinstance(self.split_joined, bool):
            raise ValueError(f"split_joined must be True or False, got {self.split_joined!r}")


#: Fewest positive images that training accepts.
MIN_POSITIVES = 4


@dataclass(frozen=True)
class TrainParams:
    """How to train or fine-tune a model from image-level labels.

    Parameters
    ----------
    epochs : int
        Passes over the positive images. Each pass mines the top instance of
        every small positive bag and the top five of every negative bag.
        0 (fine-tuning only) trains nothing: the new model is the starting
        one with the images' cell diameter and colour turn, in seconds.
    warmup_epochs : int or None
        Leading epochs of MIL alone, before self-training on the model's own
        confident cells starts. None: none when ``mil_weight`` is 0 (the
        default when fine-tuning), else half the epochs when training from
        scratch and two when starting from a trained model.
    mil_weight : float or None
        Weight of the multiple-instance losses (top instances of positive
        bags, hard negatives) in the self-training epochs, beside the
        losses on the model's own cells. None: 1 when training from
        scratch or when ``warmup_epochs`` asks for MIL epochs, else 0 when
        starting from a trained model (fine-tuning then trains on its own
        cells alone: on smears of a new look the MIL losses made it worse,
        see docs/fine-tuning.md).
    learning_rate : float or None
        AdamW learning rate. None: 1e-3 from scratch, 3e-4 when fine-tuning.
    batch_size : int
        Positive crops per step (as many negative or synthetic crops join them).
    crops_per_image : int
        Crops drawn from every positive image per epoch.
    diameter : float or None
        Cell diameter in the training images, in pixels. None estimates it
        from the images (see :func:`napari_milseg.estimate_cell_diameter`).
    seed : int
        Seed for every random choice, so runs repeat.
    device : str
        ``"auto"`` (GPU if any, else CPU), ``"cpu"``, ``"cuda"``, ...
    colour_turn : float, "auto" or "keep"
        Angle, in degrees, by which the images' colours are turned about
        their background colour, in training and in every later use of the
        model (see :mod:`napari_milseg.colour`). ``"auto"`` chooses it when
        fine-tuning, without labels: the angle under which the starting
        model's cells best match what differs in colour from the
        background (0 when no angle helps, and always 0 from scratch).
        ``"keep"`` keeps the starting model's angle (0 from scratch).
    """

    epochs: int = 10
    warmup_epochs: int | None = None
    mil_weight: float | None = None
    learning_rate: float | None = None
    batch_size: int = 16
    crops_per_image: int = 4
    diameter: float | None = None
    seed: int = 0
    device: str = "auto"
    colour_turn: float | str = "auto"

    def __post_init__(self) -> None:
        _plain_numbers(self)
        for name, least in (("epochs", 0), ("batch_size", 1), ("crops_per_image", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(
                    f"{name} must be a whole number of at least {least}, got {value!r}"
                )
        if self.warmup_epochs is not None and (
            not isinstance(self.warmup_epochs, int) or not 0 <= self.warmup_epochs <= self.epochs
        ):
            raise ValueError(
                f"warmup_epochs must be between 0 and epochs ({self.epochs}), "
                f"got {self.warmup_epochs!r}"
            )
        if self.mil_weight is not None and not (_real(self.mil_weight) and self.mil_weight >= 0):
            raise ValueError(f"mil_weight must be a number of at least 0, got {self.mil_weight!r}")
        if self.mil_weight == 0 and self.warmup_epochs:
            raise ValueError(
                "warm-up epochs train MIL alone, so they need a mil_weight above 0 "
                f"(got warmup_epochs={self.warmup_epochs} with mil_weight=0)"
            )
        if self.learning_rate is not None and not (
            _real(self.learning_rate) and 0 < self.learning_rate < 1
        ):
            raise ValueError(f"learning_rate must be between 0 and 1, got {self.learning_rate!r}")
        check_diameter(self.diameter)
        if not isinstance(self.seed, int):
            raise ValueError(f"seed must be a whole number, got {self.seed!r}")
        if self.colour_turn not in ("auto", "keep") and not _real(self.colour_turn):
            raise ValueError(
                f"colour_turn must be 'auto', 'keep' or an angle in degrees, "
                f"got {self.colour_turn!r}"
            )
