"""The MIL network, its weights files and the bundled model.

The network is a torchvision ResNet18 trunk cut after ``layer3`` with a small
feature-pyramid head, made fully convolutional: one forward pass scores every
instance (receptive-field patch) of an image at stride 4. The same map,
passed through a sigmoid, is the cell-probability heatmap.

This module imports torch at module level; the package imports it only when
a model is needed.
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ._llvm_guard import keep_triton_away_from_mesa_llvm

#: Architecture tag written into every weights file.
ARCH = "milseg-resnet18-fpn-v1"
#: Weights file format tag.
FORMAT = "napari-milseg-model"
#: Cell diameter, in pixels, at which the network sees cells.
NET_DIAMETER = 32.0
#: Output stride of the network (one instance score every OUTPUT_STRIDE pixels).
OUTPUT_STRIDE = 4
#: Input sides are padded to a multiple of this.
INPUT_MULTIPLE = 16
#: Per-channel normalisation of RGB input in [0, 1].
MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)

BUNDLED_NAME = "milseg_cbc.pt"


class ModelError(ValueError):
    """A weights file that cannot be used; the message says why."""


class MilNet(nn.Module):
    """ResNet18 trunk (to ``layer3``) with a feature-pyramid instance head.

    Input ``(N, 3, H, W)`` normalised RGB with ``H, W`` multiples of 16;
    output ``(N, 1, H/4, W/4)`` logits, one per instance.
    """

    def __init__(self) -> None:
        super().__init__()
        # torchvision pulls in torch._dynamo and with it triton, which crashes
        # beside Mesa's LLVM (napari on a software-rendered desktop)
        keep_triton_away_from_mesa_llvm()
        import torchvision

        trunk = torchvision.models.resnet18(weights=None)
        self.stem = nn.Sequential(trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool)
        self.layer1 = trunk.layer1
        self.layer2 = trunk.layer2
        self.layer3 = trunk.layer3
        width = 64
        self.lateral3 = nn.Conv2d(256, width, 1)
        self.lateral2 = nn.Conv2d(128, width, 1)
        self.lateral1 = nn.Conv2d(64, width, 1)
        self.head = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1 = self.layer1(self.stem(x))
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        p = self.lateral3(c3)
        p = F.interpolate(p, size=c2.shape[-2:], mode="bilinear", align_corners=False)
        p = p + self.lateral2(c2)
        p = F.interpolate(p, size=c1.shape[-2:], mode="bilinear", align_corners=False)
        p = p + self.lateral1(c1)
        return self.head(p)


def choose_device(device: str | None = "auto") -> torch.device:
    """Pick a torch device.

    Parameters
    ----------
    device : str or None
        ``"auto"`` (or None) takes CUDA, then Apple MPS, then the CPU;
        anything else is passed to :class:`torch.device`.
    """
    if device in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


def mps_available() -> bool:
    """Whether this PyTorch build has Apple MPS and the machine can use it."""
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


@dataclass
class MilModel:
    """A network with what is needed to use it.

    Parameters
    ----------
    net : MilNet
        The network (in eval mode unless training).
    diameter : float
        Cell diameter in pixels, in the images the model was trained on. Images
        are rescaled by ``NET_DIAMETER / diameter`` unless told otherwise.
    card : dict
        Free-form facts about the model (data, command, date, metrics).
    source : str
        Where the model came from (a path, ``"bundled"`` or ``"new"``).
    colour_turn : float
        Angle, in degrees, by which images' colours are turned about their
        background colour before the network sees them
        (:mod:`napari_milseg.colour`); 0 for the bundled model, chosen by
        fine-tuning for a new lab's stain.
    """

    net: MilNet
    diameter: float
    card: dict[str, Any] = field(default_factory=dict)
    source: str = "new"
    colour_turn: float = 0.0

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def name(self) -> str:
        """A short name for display."""
        if self.source == "bundled":
            return "bundled (CBC smears)"
        return Path(self.source).name if self.source not in ("new", "") else "new model"

    def scale_for(self, diameter: float | None) -> float:
        """Resize factor that brings cells of ``diameter`` pixels to network size."""
        return NET_DIAMETER / float(diameter if diameter is not None else self.diameter)


def new_model(diameter: float, device: str | None = "auto", seed: int | None = None) -> MilModel:
    """A freshly initialised model (for training from scratch)."""
    if seed is not None:
        torch.manual_seed(seed)
    net = MilNet().to(choose_device(device))
    return MilModel(net=net.eval(), diameter=float(diameter), source="new")


def bundled_model_path() -> Path:
    """Path of the weights file that ships inside the package."""
    return Path(__file__).parent / "weights" / BUNDLED_NAME


def save_model(model: MilModel, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write a model to a weights file.

    The file is written next to its destination and moved into place, so an
    interrupted save never leaves a half-written model. Weights are stored
    as float16 to keep files small.

    Parameters
    ----------
    model : MilModel
        The model to save.
    path : path-like
        Destination, conventionally ``*.pt``.
    overwrite : bool
        Replace an existing file. The bundled weights are never replaced.

    Returns
    -------
    Path
        The written path.
    """
    path = Path(path)
    if path.resolve() == bundled_model_path().resolve() and not os.environ.get(
        "MILSEG_ALLOW_BUNDLED_WRITE"
    ):
        raise ModelError(f"refusing to overwrite the bundled model {path}; choose another path")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True or choose another name")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"folder {path.parent} does not exist")
    state = {
        k: (v.detach().to("cpu").half() if v.is_floating_point() else v.detach().to("cpu"))
        for k, v in model.net.state_dict().items()
    }
    blob = {
        "format": FORMAT,
        "arch": ARCH,
        "diameter": float(model.diameter),
        "colour_turn": float(model.colour_turn),
        "net_diameter": NET_DIAMETER,
        "mean": list(MEAN),
        "std": list(STD),
        "card": json.dumps(model.card),
        "state_dict": state,
    }
    tmp = path.with_name(f".{path.name}.partial")
    try:
        torch.save(blob, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_model(
    path: str | os.PathLike | MilModel | None = None, device: str | None = "auto"
) -> MilModel:
    """Load a model.

    Parameters
    ----------
    path : path-like, MilModel or None
        A weights file written by :func:`save_model` (or ``milseg train``), an
        already loaded model (returned as is), or None for the bundled model,
        which is loaded once and cached.
    device : str or None
        Where to put the network; see :func:`choose_device`.

    Returns
    -------
    MilModel
        The model in eval mode.

    Raises
    ------
    ModelError
        If the file is missing, corrupt, or holds another architecture.
    """
    if isinstance(path, MilModel):
        return path
    if path is None:
        return _bundled(str(choose_device(device)))
    return _load(Path(path), choose_device(device))


@functools.lru_cache(maxsize=4)
def _bundled(device: str) -> MilModel:
    model = _load(bundled_model_path(), torch.device(device))
    model.source = "bundled"
    return model


def _load(path: Path, device: torch.device) -> MilModel:
    if not path.exists():
        raise ModelError(f"model file {path} does not exist")
    if path.is_dir():
        raise ModelError(f"{path} is a folder, not a model file")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for bad files
        detail = str(err).splitlines()[0] if str(err) else ""
        if "weights_only" in detail or "Weights only" in detail:
            detail = ""  # torch's advice to unpickle untrusted code, not for our users
        raise ModelError(
            f"{path} is not a readable napari-milseg model (corrupt or not a model file): "
            + type(err).__name__ + (f": {detail}" if detail else "")
        ) from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ModelError(
            f"{path} is not a napari-milseg model file (a plain PyTorch checkpoint or "
            "another tool's weights?)"
        )
    if blob.get("arch") != ARCH:
        raise ModelError(
            f"{path} holds architecture {blob.get('arch')!r}; this version of napari-milseg "
            f"reads {ARCH!r}"
        )
    state = blob.get("state_dict")
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ModelError(f"{path} is damaged: it holds no network weights (state_dict)")
    net = MilNet()
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ModelError(f"{path} does not fit the network: {_first_reason(err)}") from None
    if not all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
        raise ModelError(f"{path} contains non-finite weights (NaN or infinity)")
    try:
        diameter = float(blob.get("diameter", float("nan")))
    except (TypeError, ValueError):
        diameter = float("nan")
    if not math.isfinite(diameter) or diameter < 4:
        raise ModelError(
            f"{path} has no valid training cell diameter (need at least 4 px, "
            f"got {blob.get('diameter')!r})"
        )
    colour_turn = blob.get("colour_turn", 0.0)
    if not isinstance(colour_turn, (int, float)) or not math.isfinite(colour_turn):
        raise ModelError(f"{path} has an invalid colour turn {colour_turn!r}")
    try:
        card = json.loads(blob.get("card", "{}"))
    except (TypeError, ValueError):  # a damaged card costs the card, not the model
        card = {}
    if not isinstance(card, dict):
        card = {}
    return MilModel(net=net.to(device).eval(), diameter=diameter, card=card, source=str(path),
                    colour_turn=float(colour_turn))


def _first_reason(err: Exception) -> str:
    """The first line of a ``load_state_dict`` error that says what does not fit."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    reasons = [line for line in lines if not line.startswith("Error(s) in loading")]
    reason = (reasons or lines or [type(err).__name__])[0]
    return reason if len(reason) <= 300 else reason[:297] + "..."


def normalise(batch: torch.Tensor) -> torch.Tensor:
    """Normalise an ``(N, 3, H, W)`` RGB batch in ``[0, 1]`` for the network."""
    mean = torch.tensor(MEAN, device=batch.device, dtype=batch.dtype).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=batch.device, dtype=batch.dtype).view(1, 3, 1, 1)
    return (batch - mean) / std
