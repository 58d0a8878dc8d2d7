"""Where a trained model goes, and the card that says how it was made.

``milseg train`` and the Fine-tune panel both end here, so a model saved by
either has the same files and the same card:

* ``<name>.pt``: the weights (:func:`napari_milseg.model.save_model`), with
  the card inside, so :func:`~napari_milseg.model.load_model` gives it back
  as ``model.card``;
* ``<name>.json``: the same card beside it, readable without Python
  (:func:`card_path`: the model path with its suffix replaced by ``.json``).

The card holds what training reports (initial model, image counts, epochs,
learning rate, diameter, seed, losses per epoch) plus where the images came
from, how many files were used or left out, the command, the date, the time
taken and the machine.

:func:`check_destination` runs *before* training, so that a long run is not
lost to a path that cannot be written at the end.
"""

from __future__ import annotations

import json
import os
import platform
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .dataset import ImageSet
    from .model import MilModel


class DestinationError(ValueError):
    """A model destination that must not or cannot be written; the message says why."""


class DestinationExistsError(DestinationError):
    """The model file or its card exists and replacing it was not allowed."""


def card_path(model_path: str | os.PathLike) -> Path:
    """The JSON card's path for a model file: ``model.pt`` -> ``model.json``.

    Parameters
    ----------
    model_path : path-like
        The weights file.

    Returns
    -------
    Path
        Same folder and stem, suffix ``.json`` (appended if the name has no suffix).
    """
    path = Path(model_path)
    return path.with_suffix(".json") if path.suffix else path.with_name(path.name + ".json")


def check_destination(out: str | os.PathLike, overwrite: bool = False) -> Path:
    """Check, before training, that a model and its card can be written at ``out``.

    The folder is created if needed and tested by writing a small file.

    Parameters
    ----------
    out : path-like
        The weights file to write (conventionally ``*.pt``).
    overwrite : bool
        Allow replacing an existing model and card.

    Returns
    -------
    Path
        ``out`` as a Path.

    Raises
    ------
    DestinationExistsError
        If the model or its card exists and ``overwrite`` is False.
    DestinationError
        If ``out`` is the bundled model, ends in ``.json`` (the card's
        name), is a folder, or its folder cannot be created or written to.
    """
    from .io import OutputFolderError, check_output_folder
    from .model import bundled_model_path

    out = Path(out).expanduser()
    if _same_file(out, bundled_model_path()):
        raise DestinationError(
            f"{out} is the bundled model, which training never replaces; choose another path"
        )
    if out.suffix.lower() == ".json":
        raise DestinationError(
            f"{out}: a model file must not end in .json (that name is for its card); "
            "use .pt"
        )
    if out.is_dir():
        raise DestinationError(f"{out} is a folder; give a file name such as {out / 'model.pt'}")
    if not overwrite:
        for path, what in ((out, "model file"), (card_path(out), "model card")):
            if os.path.lexists(path):
                raise DestinationExistsError(f"{what} {path} already exists; not overwritten")
    try:
        check_output_folder(out.parent if str(out.parent) else Path("."), create=True)
    except OutputFolderError as err:
        raise DestinationError(str(err)) from None
    return out


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def machine_info(model: MilModel | None = None) -> dict[str, Any]:
    """Where training ran: device, CPU/GPU, torch threads and versions."""
    import torch

    info: dict[str, Any] = {
        "device": str(model.device) if model is not None else None,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if model is not None and model.device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(model.device)
    return info


def training_card(
    model: MilModel,
    positives: ImageSet,
    negatives: ImageSet | None = None,
    *,
    command: str | None = None,
    started: float | None = None,
    interrupted_after_epoch: int | None = None,
    made_with: str = "milseg train",
) -> dict[str, Any]:
    """The card of a trained model: the training facts plus data, command, date, machine.

    Parameters
    ----------
    model : MilModel
        The trained model; its ``card`` (filled in by
        :func:`napari_milseg.train.train_steps`) is the base.
    positives, negatives : ImageSet
        The images trained on (negatives None: synthesized from positives).
    command : str, optional
        The command line (or its equivalent) that made the model.
    started : float, optional
        ``time.time()`` when the run started (reading the images included).
    interrupted_after_epoch : int, optional
        Set when the run was stopped and these are the weights of this epoch.
    made_with : str
        ``"milseg train"`` or ``"napari Fine-tune panel"``.

    Returns
    -------
    dict
        JSON-serialisable.
    """
    from . import __version__

    card: dict[str, Any] = {"made_with": made_with, "napari_milseg": __version__}
    card.update(model.card)
    card["date"] = datetime.now().astimezone().isoformat(timespec="seconds")
    if started is not None:
        card["wall_seconds"] = round(time.time() - started, 1)
    if interrupted_after_epoch is not None:
        card["interrupted_after_epoch"] = int(interrupted_after_epoch)
    card["command"] = command
    card["positive_data"] = positives.describe()
    card["negative_data"] = negatives.describe() if negatives is not None else None
    dropped = card.pop("left_out_images", None)
    if dropped:
        from .dataset import left_out_text

        card["left_out"] = left_out_text(
            str(card.get("left_out", "left out")), dropped, positives, negatives
        )
    card["machine"] = machine_info(model)
    return card


def save_trained(
    model: MilModel, out: str | os.PathLike, card: dict[str, Any], overwrite: bool = False
) -> tuple[Path, Path]:
    """Write a trained model and its JSON card; the model's card and source are set.

    Parameters
    ----------
    model : MilModel
        The model; ``model.card`` becomes ``card`` and ``model.source`` the path.
    out : path-like
        The weights file.
    card : dict
        From :func:`training_card`.
    overwrite : bool
        Replace an existing model and card.

    Returns
    -------
    (Path, Path)
        The weights file and the card.

    Raises
    ------
    DestinationError, FileExistsError, OSError
        As :func:`check_destination` and the writers.
    """
    from .io import atomic_write
    from .model import save_model

    out = check_destination(out, overwrite)
    meta = card_path(out)
    text = json.dumps(card, indent=2, ensure_ascii=False) + "\n"
    model.card = dict(card)
    save_model(model, out, overwrite=overwrite)
    atomic_write(meta, lambda fh: fh.write(text.encode("utf-8")), overwrite=overwrite)
    model.source = str(out)
    return out, meta


def read_card(model_path: str | os.PathLike) -> dict[str, Any]:
    """The JSON card beside a model file."""
    return json.loads(card_path(model_path).read_text(encoding="utf-8"))
