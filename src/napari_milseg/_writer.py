"""npe2 writer: a labels layer to a TIFF file (File > Save Selected Layer).

napari's save dialog has already asked before replacing a file, so an
existing file is replaced here; the write itself is atomic (a temporary
file moved into place), so a failed save never leaves a broken TIFF.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def write_labels(path: str, data: Any, meta: dict) -> list[str]:
    """Write one labels layer to ``path`` as an integer TIFF.

    Parameters
    ----------
    path : str
        Destination ending in ``.tif`` or ``.tiff``.
    data : array-like of int, shape (..., H, W)
        The layer's data (for a multiscale layer, the list of levels: the
        full-resolution one is written).
    meta : dict
        The layer's attributes (name, scale, ...); name and scale are stored in
        the TIFF description.

    Returns
    -------
    list of str
        The written path.
    """
    from .io import write_labels as write_tiff

    if isinstance(data, (list, tuple)):
        data = data[0]
    labels = np.asarray(data)
    info = {"name": str(meta.get("name", ""))}
    if meta.get("scale") is not None:
        info["scale"] = [float(s) for s in meta["scale"]]
    return [str(write_tiff(path, labels, overwrite=True, metadata=info))]
