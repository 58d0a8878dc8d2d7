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
