"""The Fine-tune panel's background job and what it hands back to the panel.

Qt-free: :func:`finetune_job` is a generator run in a napari
``thread_worker``. It reads the images, trains with
:func:`napari_milseg.train.train_steps` (the code of ``milseg train``) and
saves the model with its card, yielding :class:`~napari_milseg.progress.Progress`
throughout. Problems with the user's input come back as a :class:`Failure`
with a message; a finished run as a :class:`Done`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .params import TrainParams
from .progress import Failure

#: What the card says made the model.
MADE_WITH = "napari Fine-tune panel"


@dataclass
class Done:
    """A finished run: the model, and where it was saved (or why not)."""

    model: Any
    card: dict
    path: Path | None = None
    card_path: Path | None = None
    error: str | None = None


@dataclass
class Pending:
    """A model not (yet) saved: the last good epoch after Cancel, or an unsaved result."""

    model: Any
    positives: Any
    negatives: Any
    started: float
    command: str | None
    interrupted_after_epoch: int | None


def finetune_job(
    positive_inputs: list[str],
    negative_inputs: list[str],
    layers: list[tuple[Any, str, bool]],
    params: TrainParams,
    init,
    out: Path,
    overwrite: bool,
    command: str | None,
):
    """Worker body: read the images, train, save; yields Progress throughout.

    Problems with the user's input (folders, images, model file, too few
    images) come back as a :class:`Failure`; anything else is a bug and
    propagates to napari.
    """
    from .card import save_trained, training_card
    from .dataset import (
        DatasetError,
        ImageSet,
        images_from_arrays,
        read_images_steps,
        require_positives,
    )
    from .model import ModelError, load_model
    from .preprocess import ImageError
    from .progress import Progress
    from .train import train_steps

    started = time.time()
    try:
        positives = ImageSet()
        if positive_inputs:
            positives = yield from read_images_steps(positive_inputs, "positive")
        if layers:
            yield Progress(0, 1, "taking the open image layers")
            data, names, rgb = zip(*layers, strict=True)
            positives = positives + images_from_arrays(
                data, names, rgb, source="open image layers"
            )
        require_positives(positives)
        negatives = None
        if negative_inputs:
            negatives = yield from read_images_steps(negative_inputs, "negative")
        yield Progress(0, 1, "images read", {"positives": positives, "negatives": negatives,
                                             "started": started})
        if not (isinstance(init, str) and init == "scratch"):
            yield Progress(0, 1, "loading the starting model")
            init = load_model(init, params.device)
        model = yield from train_steps(
            list(positives.images), list(negatives.images) if negatives else None, params, init
        )
    except (DatasetError, ImageError, ModelError) as err:
        return Failure(str(err))
    except ValueError as err:  # train_steps: too few or unusable images
        return Failure(str(err))
    except MemoryError:
        return Failure(
            "not enough memory to train; use fewer or smaller images, or tick fewer layers"
        )
    yield Progress(1, 1, "saving the model")
    card = training_card(model, positives, negatives, command=command, started=started,
                         made_with=MADE_WITH)
    try:
        path, meta = save_trained(model, out, card, overwrite=overwrite)
    except (OSError, ValueError) as err:
        return Done(model, card, error=f"could not save the model to {out}: {err}")
    return Done(model, card, path, meta)
