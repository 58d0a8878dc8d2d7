"""The bundled weights: they load, and they still find the cells of held-out smears.

A guard against shipping a broken or much worse model: the bundled model is
run on the 60 validation smears (never trained on; a few seconds) and scored
against their boxes with the benchmark's own matching. The floors sit below
what the model card reports for them (recall 0.794, all white cells, 1213
cells for 791 boxes), so only a real regression trips them.
"""

from __future__ import annotations

import numpy as np
import pytest

from validation import cellmatch, validation_names


def test_matching_counts_a_centroid_inside_a_box_once():
    cm = cellmatch()
    boxes = [cm.Box("RBC", 0, 0, 10, 10), cm.Box("WBC", 20, 0, 30, 10)]
    # two cells in the first box, none in the second, one outside both
    points = np.array([[5.0, 5.0], [6.0, 6.0], [50.0, 50.0]])
    result = cm.summarise([cm.match(points, boxes)])
    assert result["matched"] == 1
    assert result["precision"] == pytest.approx(1 / 3)
    assert result["recall"] == pytest.approx(1 / 2)
    assert result["count_accuracy"] == pytest.approx(1 - 1 / 2)


def test_bundled_model_finds_the_cells_of_held_out_smears(cbc):
    from PIL import Image

    import napari_milseg as ms
    from napari_milseg.model import bundled_model_path

    if not bundled_model_path().exists():
        pytest.skip("the bundled weights are not installed")
    cm = cellmatch()
    model = ms.load_model(None)
    results = []
    for name in validation_names():
        image = np.asarray(Image.open(cbc / "images" / name).convert("RGB"))
        labels = ms.segment(image, model=model).labels
        boxes = cm.read_voc(cbc / "annotations" / name.replace(".jpg", ".xml"))
        results.append(cm.match(cm.centroids(labels), boxes))
    summary = cm.summarise(results)
    assert summary["images"] == 60
    assert summary["recall"] >= 0.72, summary
    assert summary["recall_WBC"] >= 0.95, summary
    # neither a blank map nor confetti: the count stays near the boxes'
    assert 0.8 * summary["true"] <= summary["predicted"] <= 1.6 * summary["true"], summary
