"""Small helpers shared by the dock widgets for the layers they write.

Plain functions on layer lists and arrays; no Qt. Layers this plugin makes
carry ``metadata[ROLE_KEY] = {"role": "heatmap" | "cells", "image": name}``,
so the widgets can tell them from the user's own layers and find the
heatmap that belongs to a cells layer.
"""

from __future__ import annotations

import numpy as np

#: Key under which the plugin notes, in ``layer.metadata``, what a layer is.
ROLE_KEY = "napari_milseg"

#: Labels layer events after which its data may have changed. napari 0.9
#: emits ``paint`` when an edit is recorded: after the write for a brush
#: stroke or ``data_setitem`` in ``block_history``, but *before* it for a bare
#: ``paint()``/``fill()`` call, which ``labels_update`` follows. Undo/redo only
#: emit ``set_data``, replacing the array emits ``data``. Widgets therefore
#: listen to all four, wait for the event loop, and compare the data.
EDIT_EVENTS = ("paint", "labels_update", "set_data", "data")
#: Milliseconds to wait after the last edit event before reacting (a brush
#: drag fires many).
EDIT_DELAY_MS = 60


def is_image_layer(layer) -> bool:
    """Whether a layer is a napari image layer."""
    from napari.layers import Image

    return isinstance(layer, Image)


def layer_role(layer) -> str | None:
    """``"heatmap"`` or ``"cells"`` for layers this plugin made, else None."""
    info = getattr(layer, "metadata", {}).get(ROLE_KEY)
    return info.get("role") if isinstance(info, dict) else None


def source_image_name(layer) -> str | None:
    """Name of the image a plugin-made layer was computed from, if noted."""
    info = getattr(layer, "metadata", {}).get(ROLE_KEY)
    return info.get("image") if isinstance(info, dict) else None


def rename_source(layers, old: str, new: str) -> None:
    """Note a renamed image's new name in the layers this plugin computed from it."""
    for layer in layers:
        info = getattr(layer, "metadata", {}).get(ROLE_KEY)
        if isinstance(info, dict) and info.get("image") == old:
            layer.metadata[ROLE_KEY] = {**info, "image": new}


def placement(image) -> dict:
    """Keyword arguments that place a new layer exactly over ``image``.

    Scale, translate, rotate, shear, the extra affine and the units, so the
    heatmap and cells line up with a scaled, shifted or turned image.
    """
    return {
        "scale": image.scale,
        "translate": image.translate,
        "rotate": image.rotate,
        "shear": image.shear,
        "affine": image.affine.affine_matrix,
        "units": image.units,
    }


def follow_placement(layer, image) -> None:
    """Place an existing layer over ``image`` again (its pixel size may have changed)."""
    for name, value in placement(image).items():
        current = getattr(layer, name)
        current = getattr(current, "affine_matrix", current)
        if not np.array_equal(np.asarray(current, dtype=object), np.asarray(value, dtype=object)):
            setattr(layer, name, value)


def free_name(layers, base: str) -> str:
    """``base``, or ``base [2]``, ``base [3]``, ... whichever is not a layer name yet."""
    names = {layer.name for layer in layers}
    if base not in names:
        return base
    n = 2
    while f"{base} [{n}]" in names:
        n += 1
    return f"{base} [{n}]"


def same_labels(data, written: np.ndarray | None) -> bool:
    """Whether a labels layer still holds exactly what the plugin last wrote."""
    if written is None:
        return False
    data = np.asarray(data)
    return data.shape == written.shape and bool(np.array_equal(data, written))


def label_planes(
    heatmap: np.ndarray,
    inner: float,
    outer: float,
    diameter: float | None = None,
    image=None,
    rgb: bool | None = None,
) -> np.ndarray:
    """:func:`napari_milseg.label_cells` on every 2D plane of ``(..., H, W)``.

    ``image`` (optional) holds the same planes, with a channel axis when
    ``rgb``; each plane of it goes with its plane of ``heatmap``.

    Returns
    -------
    ndarray, shape like ``heatmap``, int32
        Labels numbered per plane, as :func:`napari_milseg.segment_stack` does.
    """
    from .cells import label_cells

    heatmap = np.asarray(heatmap)
    if heatmap.ndim == 2:
        return label_cells(heatmap, inner, outer, diameter=diameter, image=image, rgb=rgb)
    out = np.zeros(heatmap.shape, dtype=np.int32)
    for index in np.ndindex(*heatmap.shape[:-2]):
        plane = None if image is None else image[index]
        out[index] = label_cells(
            heatmap[index], inner, outer, diameter=diameter, image=plane, rgb=rgb
        )
    return out
