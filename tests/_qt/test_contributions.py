"""What the manifest contributes, through napari itself: widget, sample, writer."""

from __future__ import annotations

import numpy as np
import tifffile

from napari_milseg._widget import SegmentWidget
from toy_model import dark_model


def test_docked_from_the_manifest_and_reachable_for_other_widgets(viewer):
    dock, widget = viewer.window.add_plugin_dock_widget("napari-milseg", "Segment cells")
    assert isinstance(widget, SegmentWidget)
    # asking again returns the open widget: the hook the fine-tune widget uses
    _, again = viewer.window.add_plugin_dock_widget("napari-milseg", "Segment cells")
    assert again is widget
    again.set_model(dark_model())
    assert widget.model_name == "toy"


def test_sample_smear_opens(viewer):
    layers = viewer.open_sample("napari-milseg", "blood_smear")
    assert len(layers) == 1
    assert layers[0].data.shape == (480, 640, 3) and layers[0].rgb


def test_save_selected_labels_layer_with_the_plugin_writer(viewer, tmp_path):
    labels = np.zeros((30, 40), np.int32)
    labels[5:10, 5:10] = 1
    labels[20:25, 20:30] = 2
    viewer.add_labels(labels, name="cells")
    path = tmp_path / "cells.tif"
    written = viewer.layers.save(str(path), selected=True, plugin="napari-milseg")
    assert written == [str(path)]
    back = tifffile.imread(path)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, labels)


def test_docked_widgets_work_through_naparis_public_proxy(qtbot, viewer, recwarn):
    # napari hands plugin widgets a proxy that warns on private attribute use
    from toy_model import disc_image

    _, seg = viewer.window.add_plugin_dock_widget("napari-milseg", "Segment cells")
    _, cells = viewer.window.add_plugin_dock_widget("napari-milseg", "Edit and measure cells")
    assert type(seg.viewer).__name__ == "PublicOnlyProxy"
    seg.set_model(dark_model())
    viewer.add_image(disc_image((150, 170), [(40, 40), (40, 120), (100, 80)], 18), name="smear")
    assert seg.segment()
    qtbot.waitUntil(lambda: not seg.running, timeout=60_000)
    assert seg.count_label.text() == "3 cells"
    seg.inner_slider.setValue(0.9)
    assert [layer.name for layer in viewer.layers] == ["smear", "smear heatmap", "smear cells"]
    assert cells.labels_layer.name == "smear cells"
    assert cells.heatmap_layer.name == "smear heatmap"
    assert len(cells.table["label"]) == len(np.unique(viewer.layers["smear cells"].data)) - 1
    cells.points_layer().add((40, 40))
    assert cells.delete()
    assert len(cells.table["label"]) == 2
    private = [w for w in recwarn if "Private attribute access" in str(w.message)]
    assert private == []


def test_plugin_modules_import_without_torch():
    import json
    import subprocess
    import sys

    probe = (
        "import json, sys\n"
        "import napari_milseg._widget, napari_milseg._cells_widget\n"
        "import napari_milseg._writer, napari_milseg._sample_data\n"
        "napari_milseg._sample_data.blood_smear()\n"
        "print(json.dumps([m for m in sys.modules if m.split('.')[0] == 'torch']))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
