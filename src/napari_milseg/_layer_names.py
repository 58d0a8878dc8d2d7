"""Keep the dock widgets' layer pickers in step when a layer is renamed.

The pickers list layers by name. napari tells a rename only after it
happened, with the new name, so a picker rebuilt from the layer list loses
its choice and falls back to another layer. :class:`LayerNames` remembers
every layer's name and renames the entry in place instead, which keeps the
choice (and the tick of a checkable list item).
"""

from __future__ import annotations

from ._layers import rename_source


class LayerNames:
    """Rename entries of combo boxes and list widgets when their layer is renamed.

    Parameters
    ----------
    layers : napari.components.LayerList
        The viewer's layers.
    widgets : sequence of QComboBox or QListWidget
        The pickers whose entries are layer names.

    Layers this plugin computed from a renamed image are told its new name
    (:func:`napari_milseg._layers.rename_source`), so the Edit and measure
    cells panel still finds a cells layer's heatmap and image.
    """

    def __init__(self, layers, widgets) -> None:
        self._layers = layers
        self._widgets = list(widgets)
        self._names: dict = {}
        layers.events.inserted.connect(self._track)
        layers.events.removed.connect(self._track)
        self._track()

    def _track(self, event=None) -> None:
        present = list(self._layers)
        for layer in [known for known in self._names if known not in present]:
            layer.events.name.disconnect(self._renamed)
            del self._names[layer]
        for layer in present:
            if layer not in self._names:
                self._names[layer] = layer.name
                layer.events.name.connect(self._renamed)

    def _renamed(self, event) -> None:
        layer = event.source
        old, new = self._names.get(layer), layer.name
        self._names[layer] = new
        if old is None or old == new:
            return
        rename_source(self._layers, old, new)
        try:
            for widget in self._widgets:
                if hasattr(widget, "findText"):  # QComboBox
                    index = widget.findText(old)
                    if index >= 0:
                        widget.setItemText(index, new)
                else:  # QListWidget
                    for item in widget.findItems(old, _exact()):
                        item.setText(new)
        except RuntimeError:  # the dock was closed and its widgets deleted
            self.disconnect()

    def disconnect(self) -> None:
        """Stop following (the dock is closing)."""
        self._layers.events.inserted.disconnect(self._track)
        self._layers.events.removed.disconnect(self._track)
        for layer in self._names:
            layer.events.name.disconnect(self._renamed)
        self._names.clear()


def _exact():
    from qtpy.QtCore import Qt

    return Qt.MatchFlag.MatchExactly
