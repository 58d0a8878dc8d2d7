"""Training and fine-tuning from image-level labels only.

The one training routine behind ``milseg train`` and the Fine-tune panel:

1. Positive images (with cells) and negative images (background only) are
   brought to network scale, where a cell is ``NET_DIAMETER`` pixels across.
   Without negatives, they are synthesized from the positives
   (:mod:`napari_milseg.negatives`).
2. Warm-up epochs run multiple-instance learning alone
   (:mod:`napari_milseg.mil`): small bags, top-1 positives, top-5 hard
   negatives.
3. Later epochs add self-training (:mod:`napari_milseg.selftrain`): at the
   start of each epoch the current model labels every positive image; its
   confident single cells become centre-peaked targets on the real images
   and are pasted into synthetic clumps, so the heatmap learns to dip
   between touching cells.

:func:`train_steps` is a generator yielding :class:`~napari_milseg.progress.Progress`;
at the end of every epoch the report's ``info["model"]`` holds a copy of the
model so far, which a front end may keep if the user cancels.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from datetime import datetime, timezone

import numpy as np

from .params import MIN_POSITIVES, TrainParams
from .preprocess import ImageError, as_rgb_float, show_slide_only
from .progress import Progress, Steps

#: Crop side at network scale (about four cell diameters).
CROP = 128
#: Largest image side kept whole at network scale; larger images are cut.
MAX_SIDE = 1024
#: Synthesized negatives per positive image.
NEGATIVES_PER_POSITIVE = 2
#: Largest number of cell patches kept for composites.
MAX_PATCHES = 4000
#: Distance from the colour foreground, in cell diameters, beyond which
#: background pixels of a positive image serve as hard negatives.
BACKGROUND_MARGIN = 0.2


def train(
    positives: Sequence[np.ndarray],
    negatives: Sequence[np.ndarray] | None = None,
    params: TrainParams | None = None,
    init=None,
):
    """Train a model and return it (see :func:`train_steps`)."""
    from .progress import run

    return run(train_steps(positives, negatives, params or TrainParams(), init))


def train_steps(
    positives: Sequence[np.ndarray],
    negatives: Sequence[np.ndarray] | None = None,
    params: TrainParams | None = None,
    init=None,
) -> Steps:
    """Train or fine-tune a model, yielding progress.

    Parameters
    ----------
    positives : sequence of ndarray, each (H, W) or (H, W, C)
        Images that contain cells. Sizes and dtypes may differ.
    negatives : sequence of ndarray or None
        Background-only images; None or empty synthesizes them from the positives.
    params : TrainParams
        Epochs, learning rate, diameter, seed, ...
    init : None, "scratch", path-like or MilModel
        Starting weights: None for the bundled model, ``"scratch"`` for a
        fresh network, or a model file / loaded model. A loaded model is not
        modified; training works on a copy.

    Yields
    ------
    Progress
        Per step, with ``info`` holding ``epoch``, ``stage`` and ``loss``; at
        the end of each epoch also ``model``, a copy of the model so far.

    Returns
    -------
    MilModel
        The trained model (eval mode), its ``card`` filled in. With 0 epochs
        (not from scratch) the starting weights, untouched, with the
        positives' cell diameter and the colour turn.

    Raises
    ------
    ValueError
        Too few positives, unusable images or parameters.
    """
    import torch

    from .model import NET_DIAMETER, load_model, new_model

    params = params or TrainParams()
    started = time.time()
    if params.epochs == 0 and isinstance(init, str) and init == "scratch":
        raise ValueError("training a new network needs at least 1 epoch")
    if len(positives) < MIN_POSITIVES:
        raise ValueError(
            f"training needs at least {MIN_POSITIVES} positive images, got {len(positives)}"
        )
    rng = np.random.default_rng(params.seed)
    torch.manual_seed(params.seed)

    yield Progress(0, 1, "reading images")
    pos_rgb = [_rgb(image, f"positive image {i + 1}") for i, image in enumerate(positives)]
    neg_rgb = [_rgb(image, f"negative image {i + 1}") for i, image in enumerate(negatives or [])]
    if params.diameter is None:
        from .diameter import estimate_rgb_diameter

        diameter = estimate_rgb_diameter(pos_rgb)
    else:
        diameter = params.diameter
    pos_rgb, neg_rgb, too_small, dropped = _leave_out_small(pos_rgb, neg_rgb, diameter)
    if too_small:
        yield Progress(0, 1, too_small, {"left_out": dropped})

    if isinstance(init, str) and init == "scratch":
        model = new_model(diameter, params.device, seed=params.seed)
        from_scratch = True
        init_name = "scratch"
    else:
        loaded = load_model(init, params.device)
        model = copy.deepcopy(loaded)
        init_name = loaded.name
        from_scratch = False
    model.diameter = float(diameter)
    model.source = "new"

    turn_card: dict = {}
    if params.colour_turn == "auto":
        if from_scratch:
            model.colour_turn = 0.0
        else:
            from .colour import choose_turn_steps

            choice = yield from choose_turn_steps(pos_rgb, model, diameter)
            model.colour_turn = choice.degrees
            turn_card = choice.card()
            yield Progress(0, 1, choice.summary(), {"colour_turn": choice.degrees})
    elif params.colour_turn != "keep":
        model.colour_turn = float(params.colour_turn)
    turn_card.setdefault("colour_turn", model.colour_turn)
    if too_small:
        # the file names are known to the caller: card.training_card puts them in
        turn_card["left_out"] = too_small
        turn_card["left_out_images"] = [[what, i] for what, i in dropped]
    if params.epochs == 0:
        # adapt only: the starting weights with these images' diameter and colour turn
        model.card = _card(params, init_name, diameter, pos_rgb, [], False, [], started, 0,
                           None, 0, None) | turn_card | {"negatives": "none used (no training)"}
        return model
    if model.colour_turn % 360:
        from .colour import turn_colours

        yield Progress(0, 1, f"turning colours by {model.colour_turn:+g}°")
        pos_rgb = [turn_colours(image, model.colour_turn) for image in pos_rgb]
        neg_rgb = [turn_colours(image, model.colour_turn) for image in neg_rgb]
    scale = NET_DIAMETER / diameter
    pos_net = [piece for image in pos_rgb for piece in _to_net_scale(image, scale)]
    neg_net = [piece for image in neg_rgb for piece in _to_net_scale(image, scale)]
    del pos_rgb, neg_rgb

    from .negatives import (
        TRAINING_NOISE_WIDTHS,
        background_light,
        estimate_foreground,
        synthesize_negative,
    )

    yield Progress(0, 1, "preparing negatives")
    # a lower threshold than the default, so that pale red cells are foreground:
    # painted out of the negatives, and never taught as background
    foreground = [
        estimate_foreground(image, NET_DIAMETER, TRAINING_NOISE_WIDTHS) for image in pos_net
    ]
    lights = [
        background_light(img, fg, NET_DIAMETER)
        for img, fg in zip(pos_net, foreground, strict=True)
    ]
    synthesized = not neg_net
    if synthesized:
        neg_net = [
            synthesize_negative(img, fg, NET_DIAMETER, rng, light)
            for img, fg, light in zip(pos_net, foreground, lights, strict=True)
            for _ in range(NEGATIVES_PER_POSITIVE)
        ]

    net = model.net
    device = model.device

    mil_weight = params.mil_weight
    if mil_weight is None:
        # fine-tuning trains on the model's own cells alone, unless MIL warm-up is asked for
        mil_weight = 1.0 if from_scratch or params.warmup_epochs else 0.0
    warmup = params.warmup_epochs
    if warmup is None:
        if mil_weight == 0:
            warmup = 0  # MIL epochs with no MIL loss would train nothing
        else:
            warmup = params.epochs // 2 if from_scratch else min(2, params.epochs)
    lr = params.learning_rate or (1e-3 if from_scratch else 3e-4)
    batch = min(params.batch_size, len(pos_net) * params.crops_per_image)
    steps_per_epoch = max(1, math.ceil(len(pos_net) * params.crops_per_image / batch))
    total = steps_per_epoch * params.epochs
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    warm_steps = min(100, total // 10) if from_scratch else 0

    def rate(step: int) -> float:
        if step < warm_steps:
            return (step + 1) / warm_steps
        return 0.5 * (1 + math.cos(math.pi * (step - warm_steps) / max(1, total - warm_steps)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    data = _Data(pos_net, foreground, lights, neg_net, rng)
    step = 0
    history = []
    for epoch in range(params.epochs):
        refine = epoch >= warmup
        stage = "self-training" if refine else "MIL"
        if refine:
            yield Progress(step, total, f"epoch {epoch + 1}/{params.epochs}: labelling own cells")
            data.refresh_pseudo_labels(model)
        net.train()
        losses = []
        for _ in range(steps_per_epoch):
            loss, stats = _train_step(net, data, batch, refine, device, rng, mil_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            losses.append(float(loss.detach()))
            yield Progress(
                step,
                total,
                f"epoch {epoch + 1}/{params.epochs} ({stage})",
                {"epoch": epoch + 1, "stage": stage, "loss": losses[-1], **stats},
            )
        net.eval()
        history.append(float(np.mean(losses)))
        model.card = _card(params, init_name, diameter, pos_net, neg_net, synthesized,
                           history, started, epoch + 1, lr, warmup, mil_weight) | turn_card
        yield Progress(
            step,
            total,
            f"epoch {epoch + 1}/{params.epochs} done",
            {"epoch": epoch + 1, "stage": stage, "loss": history[-1],
             "model": copy.deepcopy(model), "epoch_done": True},
        )
    return model


def _card(params, init_name, diameter, pos, neg, synthesized, history, started, epochs_done,
          lr, warmup, mil_weight) -> dict:
    return {
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "init": init_name,
        "positive_images": len(pos),
        "negative_images": 0 if synthesized else len(neg),
        "negatives": "synthesized from positives" if synthesized else "given",
        "epochs": epochs_done,
        "epochs_planned": params.epochs,
        "warmup_epochs": warmup,
        "mil_weight": mil_weight,
        "learning_rate": lr,
        "batch_size": params.batch_size,
        "crops_per_image": params.crops_per_image,
        "diameter": float(diameter),
        "seed": params.seed,
        "epoch_losses": [round(v, 5) for v in history],
        "seconds": round(time.time() - started, 1),
    }


def _leave_out_small(pos_rgb, neg_rgb, diameter: float):
    """Drop images smaller than one cell across; say which, or refuse if too few are left.

    Returns
    -------
    positives, negatives : list of ndarray
        The images kept.
    note : str
        What was left out ("" if nothing).
    dropped : list of (str, int)
        ``("positive" or "negative", index)`` of each image left out.
    """
    from .heatmap import MIN_SIDE_DIAMETERS

    least = MIN_SIDE_DIAMETERS * diameter
    kept, dropped, names = {"positive": [], "negative": []}, [], []
    for what, images in (("positive", pos_rgb), ("negative", neg_rgb)):
        for i, image in enumerate(images):
            if min(image.shape[:2]) >= least:
                kept[what].append(image)
            else:
                dropped.append((what, i))
                names.append(f"{what} image {i + 1} ({image.shape[1]}x{image.shape[0]} px)")
    if not dropped:
        return pos_rgb, neg_rgb, "", []
    note = (f"left out {len(dropped)} image{'s' if len(dropped) > 1 else ''} smaller than one "
            f"cell ({least:.0f} px across): {', '.join(names[:3])}"
            + (", ..." if len(names) > 3 else ""))
    if len(kept["positive"]) < MIN_POSITIVES:
        raise ValueError(
            f"training needs at least {MIN_POSITIVES} positive images at least one cell "
            f"({least:.0f} px) across, got {len(kept['positive'])}; {note}"
        )
    return kept["positive"], kept["negative"], note, dropped


def _rgb(image: np.ndarray, name: str) -> np.ndarray:
    try:  # as segment sees it: transparent pixels and a black frame show the background
        return as_rgb_float(show_slide_only(image)[0])
    except ImageError as err:
        raise ImageError(f"{name}: {err}") from None


def _to_net_scale(image: np.ndarray, scale: float) -> list[np.ndarray]:
    import torch
    from torch.nn import functional as F

    h, w = image.shape[:2]
    hn, wn = max(1, round(h * scale)), max(1, round(w * scale))
    if min(hn, wn) < 32:
        raise ImageError(
            f"an image of {w}x{h} px holds less than one cell of the training diameter; "
            "use larger images or a smaller diameter"
        )
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
    x = F.interpolate(x, size=(hn, wn), mode="bilinear", align_corners=False, antialias=scale < 1)
    out = x[0].permute(1, 2, 0).numpy().copy()
    pieces = []
    for y in range(0, hn, MAX_SIDE):
        for xx in range(0, wn, MAX_SIDE):
            piece = out[y : y + MAX_SIDE, xx : xx + MAX_SIDE]
            if min(piece.shape[:2]) >= 32:
                pieces.append(np.ascontiguousarray(piece))
    return pieces


class _Data:
    """Training images at network scale and the crops drawn from them."""

    def __init__(self, positives, foreground, lights, negatives, rng) -> None:
        from scipy import ndimage as ndi

        from .model import NET_DIAMETER

        self.positives = positives
        self.foreground = [fg.astype(np.float32) for fg in foreground]
        # surely background: well clear of anything the colour estimate calls foreground
        margin = BACKGROUND_MARGIN * NET_DIAMETER
        self.background = [
            (ndi.distance_transform_edt(~fg) >= margin).astype(np.float32) for fg in foreground
        ]
        self.lights = lights
        self.negatives = negatives
        self.rng = rng
        self.cells: list[np.ndarray] | None = None
        self.known: list[np.ndarray] | None = None
        self.patches = []

    def refresh_pseudo_labels(self, model) -> None:
        from .heatmap import predict_tile
        from .model import NET_DIAMETER
        from .selftrain import confident_cells, cut_patches
        from .small_cells import ENLARGE

        cells, known, patches = [], [], []
        import torch

        with torch.inference_mode():
            sources = zip(self.positives, self.foreground, self.lights, strict=True)
            for image, fg, (light, _) in sources:
                heat = predict_tile(model, image, 1.0)
                closer = predict_tile(model, image, ENLARGE)
                c, k = confident_cells(heat, fg > 0.5, NET_DIAMETER, closer_look=closer)
                cells.append(c)
                known.append(k.astype(np.float32))
                patches.extend(cut_patches(image, light, c))
        if len(patches) > MAX_PATCHES:
            keep = self.rng.choice(len(patches), MAX_PATCHES, replace=False)
            patches = [patches[i] for i in keep]
        self.cells, self.known, self.patches = cells, known, patches

    def positive(self, side: int):
        from .augment import random_crop
        from .selftrain import centre_target, labels_to_masks

        i = int(self.rng.integers(len(self.positives)))
        arrays = [self.positives[i], self.foreground[i], self.background[i]]
        if self.cells is not None:
            arrays += [self.cells[i], self.known[i]]
        crops = random_crop(arrays, side, self.rng)
        if self.cells is None:
            return crops[:3] + [None, None]
        target = centre_target(labels_to_masks(crops[3]), crops[3].shape)
        return crops[:3] + [target, crops[4]]

    def negative(self, side: int) -> np.ndarray:
        from .augment import random_crop

        i = int(self.rng.integers(len(self.negatives)))
        return random_crop([self.negatives[i]], side, self.rng)[0]

    def composite(self, side: int):
        from .selftrain import composite

        return composite(self.negative(side), self.patches, self.rng)


def _tensor(array: np.ndarray, size: int, mode: str):
    import torch
    from torch.nn import functional as F

    t = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    t = t.permute(2, 0, 1) if t.ndim == 3 else t[None]
    if t.shape[-1] != size:
        kwargs = {"align_corners": False} if mode == "bilinear" else {}
        t = F.interpolate(t[None], size=(size, size), mode=mode, **kwargs)[0]
    return t


def _sample(arrays, modes, rng):
    """Resize one sample's arrays to ``CROP`` and flip/turn them together."""
    from .augment import geometric

    tensors = [_tensor(a, CROP, m) for a, m in zip(arrays, modes, strict=True)]
    return geometric(tensors, rng)


def _train_step(net, data: _Data, batch: int, refine: bool, device, rng, mil_weight: float):
    import torch
    from torch.nn import functional as F

    from .augment import photometric
    from .mil import mil_loss
    from .model import NET_DIAMETER, OUTPUT_STRIDE, normalise

    def side() -> int:
        return int(round(CROP * rng.uniform(0.8, 1.25)))

    pos_img, pos_fg, pos_bg, pos_tgt, pos_w = [], [], [], [], []
    for _ in range(batch):
        image, fg, bg, target, weight = data.positive(side())
        modes = ["bilinear", "bilinear", "nearest"]
        if refine:
            t = _sample([image, fg, bg, target, weight], modes + ["bilinear", "nearest"], rng)
            pos_tgt.append(t[3])
            pos_w.append(t[4])
        else:
            t = _sample([image, fg, bg], modes, rng)
        pos_img.append(t[0])
        pos_fg.append(t[1])
        pos_bg.append(t[2])
    n_comp = batch // 2 if refine and data.patches else 0
    neg_img = [_sample([data.negative(side())], ["bilinear"], rng)[0]
               for _ in range(batch - n_comp)]
    comp_img, comp_tgt = [], []
    for _ in range(n_comp):
        image, target = data.composite(side())
        t = _sample([image, target], ["bilinear", "bilinear"], rng)
        comp_img.append(t[0])
        comp_tgt.append(t[1])

    images = torch.stack(pos_img + neg_img + comp_img)
    images = normalise(photometric(images, rng)).to(device)
    if device.type == "cpu":
        # about a fifth faster on oneDNN, as in heatmap.predict_tile
        images = images.contiguous(memory_format=torch.channels_last)
    logits = net(images)
    n_pos, n_neg = len(pos_img), len(neg_img)
    valid = F.avg_pool2d(torch.stack(pos_fg), OUTPUT_STRIDE).to(device)
    background = (F.avg_pool2d(torch.stack(pos_bg), OUTPUT_STRIDE) > 0.999).to(device)
    bag = int(round(2 * NET_DIAMETER / OUTPUT_STRIDE))
    loss, stats = mil_loss(
        logits[:n_pos], logits[n_pos : n_pos + n_neg], valid, background, bag, bag // 2
    )
    stats = {"mil": float(loss.detach()), **stats}
    if refine:
        # in self-training the MIL losses stand beside the losses on the model's own cells
        loss = loss * mil_weight
        dense = F.interpolate(logits, scale_factor=OUTPUT_STRIDE, mode="bilinear",
                              align_corners=False)
        target = torch.stack(pos_tgt).to(device)
        weight = torch.stack(pos_w).to(device)
        real = F.binary_cross_entropy_with_logits(dense[:n_pos], target, weight, reduction="sum")
        real = real / weight.sum().clamp(min=1.0)
        loss = loss + real
        stats["real"] = float(real.detach())
        if comp_img:
            target = torch.stack(comp_tgt).to(device)
            synth = F.binary_cross_entropy_with_logits(dense[n_pos + n_neg :], target)
            loss = loss + synth
            stats["synthetic"] = float(synth.detach())
    return loss, stats
