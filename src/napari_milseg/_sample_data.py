"""Sample data for File > Open Sample: one blood smear from the CBC dataset.

The image ships in ``data/`` (MIT licensed, copyright 2019 Md Mahmudul Alam;
see ``data/LICENSE-sample.txt``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SAMPLE_PATH = Path(__file__).parent / "data" / "blood_smear.jpg"


def blood_smear() -> list[tuple]:
    """A 640x480 RGB blood smear with red cells, a white cell and platelets.

    Returns
    -------
    list of (data, metadata, layer_type)
        One RGB ``uint8`` image layer named ``blood smear``.
    """
    from PIL import Image

    with Image.open(SAMPLE_PATH) as image:
        data = np.asarray(image.convert("RGB"))
    return [(data, {"name": "blood smear", "rgb": True}, "image")]
