"""The "Edit and measure cells" dock widget: split, merge, delete, table, CSV.

The user places points on cells (a points layer the widget makes), then
clicks Split (two or more points in one merged cell), Merge (points on the
cells to join) or Delete. The edits come from :mod:`napari_milseg.editing`
and are written with the labels layer's own history, so napari's undo
takes each back in one step. After any change to the labels (these
buttons, napari's paint/fill/erase, undo, a new segmentation) the per-cell
table from :mod:`napari_milseg.measure` is recomputed, stored as the
layer's ``features`` and shown with a summary. Export writes the table as
CSV and the labels as a TIFF beside it, never replacing files unasked.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ._dialogs import confirm_replace
from ._latest_job import LIVE_PIXELS, LatestJob
from ._layer_names import LayerNames
from ._layers import EDIT_DELAY_MS, EDIT_EVENTS, layer_role, same_labels, source_image_name

if TYPE_CHECKING:  # pragma: no cover
    import napari

NONE = "(none)"
#: Decimals shown in the table (the CSV keeps full precision).
SHOWN_DECIMALS = 3


class CellsWidget(QWidget):
    """Dock widget: fix cells by hand and measure them.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer whose labels layers are edited and measured.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.table: dict[str, np.ndarray] = {}
        self._watched = None  # the labels layer whose events we listen to
        self._watched_heatmap = None
        self._measured: np.ndarray | None = None  # labels the table was computed from
        self._points = None
        # large labels layers are measured in a worker, the newest request last
        self._measures = LatestJob(self._on_measured, self)
        self._edit_timer = QTimer(self)
        self._edit_timer.setSingleShot(True)
        self._edit_timer.setInterval(EDIT_DELAY_MS)
        self._edit_timer.timeout.connect(self._refresh_if_changed)
        self._build()
        self._refresh_pickers()
        self._follow_active()
        layers = self.viewer.layers
        layers.events.inserted.connect(self._refresh_pickers)
        layers.events.removed.connect(self._refresh_pickers)
        layers.selection.events.active.connect(self._follow_active)
        # a renamed layer keeps its place in the pickers (and stays picked)
        self._layer_names = LayerNames(
            layers, [self.labels_picker, self.heatmap_picker, self.image_picker]
        )

    # ------------------------------------------------------------ layout
    def _build(self) -> None:
        self.labels_picker = QComboBox()
        self.labels_picker.setToolTip("The labels layer to edit and measure")
        self.heatmap_picker = QComboBox()
        self.heatmap_picker.setToolTip("Heatmap for splitting and mean probability (optional)")
        self.image_picker = QComboBox()
        self.image_picker.setToolTip("Image for mean intensity (optional)")
        self.labels_picker.currentTextChanged.connect(self._on_labels_picked)
        self.heatmap_picker.currentTextChanged.connect(self._on_sources_picked)
        self.image_picker.currentTextChanged.connect(self._on_sources_picked)

        self.points_button = QPushButton("Place points")
        self.points_button.setToolTip("Click on cells in the points layer, then Split/Merge/Delete")
        self.points_button.clicked.connect(self.points_layer)
        self.split_button = QPushButton("Split")
        self.split_button.setToolTip("Split a merged cell: two or more points inside it")
        self.split_button.clicked.connect(self.split)
        self.merge_button = QPushButton("Merge")
        self.merge_button.setToolTip("Join the cells under the points into one")
        self.merge_button.clicked.connect(self.merge)
        self.delete_button = QPushButton("Delete")
        self.delete_button.setToolTip("Delete the cells under the points")
        self.delete_button.clicked.connect(self.delete)
        edits = QHBoxLayout()
        for button in (self.split_button, self.merge_button, self.delete_button):
            edits.addWidget(button)

        self.summary_label = QLabel("")
        self.summary_label.setWordWrap(True)
        self.table_view = QTableWidget()
        self.table_view.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.export_button = QPushButton("Export CSV…")
        self.export_button.clicked.connect(self._ask_export)

        form = QFormLayout()
        form.addRow("labels", self.labels_picker)
        form.addRow("heatmap", self.heatmap_picker)
        form.addRow("intensity", self.image_picker)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.points_button)
        layout.addLayout(edits)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.table_view, 1)
        layout.addWidget(self.export_button)

    # ------------------------------------------------------------ layers
    @property
    def labels_layer(self):
        """The labels layer picked for editing, or None."""
        return self._layer(self.labels_picker.currentText())

    @property
    def heatmap_layer(self):
        """The heatmap image layer used for splitting and probabilities, or None."""
        return self._layer(self.heatmap_picker.currentText())

    @property
    def intensity_layer(self):
        """The image layer used for mean intensity, or None."""
        return self._layer(self.image_picker.currentText())

    def _layer(self, name: str):
        return self.viewer.layers[name] if name and name in self.viewer.layers else None

    def points_layer(self):
        """The points layer for edits (made on first use), selected in add mode."""
        labels = self.labels_layer
        if labels is None:
            _warn("Pick a labels layer first.")
            return None
        points = self._points
        if points is not None and points in self.viewer.layers and points.ndim != labels.ndim:
            # made for a layer with other axes (a 2D image, then a stack): a new one
            if len(points.data) == 0:
                self.viewer.layers.remove(points)
            points = None
        if points is None or points not in self.viewer.layers:
            points = self.viewer.add_points(
                np.empty((0, labels.ndim)),
                ndim=labels.ndim,
                name=f"{labels.name} edit points",
                size=max(3.0, 4 * float(min(labels.scale[-2:]))),
                face_color="cyan",
                scale=labels.scale,
                translate=labels.translate,
                units=labels.units,
            )
            self._points = points
        self.viewer.layers.selection.active = points
        points.mode = "add"
        return points

    def _refresh_pickers(self, event=None) -> None:
        from napari.layers import Image, Labels

        labels = [layer.name for layer in self.viewer.layers if isinstance(layer, Labels)]
        images = [layer for layer in self.viewer.layers if isinstance(layer, Image)]
        heatmaps = [NONE] + [layer.name for layer in images if layer_role(layer) == "heatmap"]
        plain = [NONE] + [layer.name for layer in images if layer_role(layer) is None]
        # sources first: picking a labels layer picks its heatmap and image among them
        _set_items(self.heatmap_picker, heatmaps)
        _set_items(self.image_picker, plain)
        _set_items(self.labels_picker, labels)
        self._watch()

    def _follow_active(self, event=None) -> None:
        from napari.layers import Labels

        active = self.viewer.layers.selection.active
        if isinstance(active, Labels):
            self.labels_picker.setCurrentText(active.name)

    def _on_labels_picked(self, name: str) -> None:
        layer = self.labels_layer
        if layer is not None and layer_role(layer) == "cells":
            # pick the heatmap and image this plugin computed the cells from
            image = source_image_name(layer)
            for other in self.viewer.layers:
                if layer_role(other) == "heatmap" and source_image_name(other) == image:
                    self.heatmap_picker.setCurrentText(other.name)
            if image in self.viewer.layers:
                self.image_picker.setCurrentText(image)
        self._watch()

    def _on_sources_picked(self, name: str) -> None:
        self._watch(force=True)

    def _watch(self, force: bool = False) -> None:
        """Listen to the picked labels (and heatmap) layer and refresh the table."""
        layer, heatmap = self.labels_layer, self.heatmap_layer
        if layer != self._watched:
            for name in EDIT_EVENTS:
                if self._watched is not None:
                    getattr(self._watched.events, name).disconnect(self._on_labels_event)
                if layer is not None:
                    getattr(layer.events, name).connect(self._on_labels_event)
            self._watched = layer
            force = True
        if heatmap != self._watched_heatmap:
            if self._watched_heatmap is not None:
                self._watched_heatmap.events.data.disconnect(self._on_sources_picked)
            if heatmap is not None:
                heatmap.events.data.connect(self._on_sources_picked)
            self._watched_heatmap = heatmap
            force = True
        if force:
            self.refresh()

    def _on_labels_event(self, event=None) -> None:
        self._edit_timer.start()  # coalesce a brush drag's many events

    def _refresh_if_changed(self, now: bool = False) -> None:
        """Measure again if the labels differ from those the table was made from."""
        layer = self.labels_layer
        if layer is not None and not same_labels(layer.data, self._measured):
            self.refresh(now=now)

    # ------------------------------------------------------------ table
    def refresh(self, now: bool = False) -> None:
        """Measure the picked labels layer again and show the table and summary.

        A layer of more than :data:`LIVE_PIXELS` pixels is measured in a
        worker (a 5000x5000 one with about 2000 cells takes seconds), so
        napari stays responsive; the summary says so until the table
        arrives, and changes made meanwhile are measured after it.

        Parameters
        ----------
        now : bool
            Measure in this thread whatever the size (export does, so that
            the table it writes is that of the labels it writes).
        """
        layer = self.labels_layer
        multiscale = layer is not None and getattr(layer, "multiscale", False)
        if layer is None or multiscale:
            self._measures.drop()
            self.table, self._measured = {}, None
            self._show()
            if multiscale:
                self.summary_label.setText(
                    f"'{layer.name}' is a multiscale labels layer: not measured or edited "
                    "here (its levels differ); use a single-scale copy"
                )
            return
        data = np.array(layer.data, copy=True)
        sources = (
            _data_like(self.heatmap_layer, data.shape),
            _data_like(self.intensity_layer, data.shape),
            tuple(layer.scale),
        )
        if now or data.size <= LIVE_PIXELS:
            self._measures.drop()
            self._on_measured(_measure_job(layer, data, *sources))
            return
        self.summary_label.setText(f"measuring '{layer.name}'…")
        self._measures.request(_measure_job, layer, data, *sources)

    @property
    def measuring(self) -> bool:
        """Whether a large labels layer is being measured in the background."""
        return self._measures.busy

    def _on_measured(self, out) -> None:
        layer, data, table, error = out
        if layer != self.labels_layer:  # not `is`: napari may hand out proxies
            return  # another layer was picked meanwhile
        if error is not None:
            _warn(f"Cannot measure '{layer.name}': {error}")
        self.table, self._measured = table, data
        if self.table:
            features = _merged_features(layer.features, self.table)
            if features is not None:
                layer.features = features
        self._show()

    def _show(self) -> None:
        from .measure import summary

        table = self.table
        names = list(table)
        rows = len(table[names[0]]) if names else 0
        self.table_view.setUpdatesEnabled(False)
        self.table_view.clear()
        self.table_view.setColumnCount(len(names))
        self.table_view.setRowCount(rows)
        self.table_view.setHorizontalHeaderLabels([n.replace("_", " ") for n in names])
        for col, name in enumerate(names):
            for row, value in enumerate(table[name]):
                self.table_view.setItem(row, col, QTableWidgetItem(_fmt(value)))
        self.table_view.setUpdatesEnabled(True)
        if not names:
            self.summary_label.setText("")
            return
        stats = summary(table)
        unit = _unit(self.labels_layer)
        text = f"{stats['count']} cell{'s' if stats['count'] != 1 else ''}"
        if stats["count"]:
            text += (
                f" · area mean {stats['mean_area']:.4g}, median {stats['median_area']:.4g} {unit}²"
                f" · diameter mean {stats['mean_diameter']:.4g} {unit}"
            )
        self.summary_label.setText(text)

    # ------------------------------------------------------------ edits
    def split(self) -> bool:
        """Split every cell holding two or more points; one piece per point."""
        from .editing import split_cells

        layer = self.labels_layer
        heat = _data_like(self.heatmap_layer, np.shape(layer.data)) if layer is not None else None
        if heat is not None and heat.shape != np.shape(layer.data):
            heat = None  # a heatmap has no colour axis

        def change(labels, points, plane):
            return split_cells(labels, points, None if heat is None else heat[plane])

        return self._edit(change)

    def merge(self) -> bool:
        """Join the cells under the points into one (the smallest label)."""
        from .editing import cells_at, merge_cells

        return self._edit(lambda labels, pts, plane: merge_cells(labels, cells_at(labels, pts)))

    def delete(self) -> bool:
        """Delete the cells under the points."""
        from .editing import cells_at, delete_cells

        return self._edit(lambda labels, pts, plane: delete_cells(labels, cells_at(labels, pts)))

    def _edit(self, change) -> bool:
        """Apply ``change(labels2d, points2d, plane)`` per plane, as one undoable step."""
        layer, points = self.labels_layer, self._points
        if layer is None:
            _warn("Pick a labels layer first.")
            return False
        if points is None or points not in self.viewer.layers or len(points.data) == 0:
            _warn("Place points on the cells first (Place points, then click on the cells).")
            return False
        if points.ndim != layer.ndim:
            _warn(f"The edit points were placed for a layer with {points.ndim} axes, "
                  f"'{layer.name}' has {layer.ndim}: click Place points and place them again.")
            return False
        if getattr(layer, "multiscale", False):
            _warn(f"'{layer.name}' is a multiscale labels layer; edit a single-scale copy.")
            return False
        coords = np.array([layer.world_to_data(points.data_to_world(p)) for p in points.data])
        data = layer.data
        planes: dict[tuple[int, ...], list] = {}
        for c in coords:
            planes.setdefault(tuple(int(round(v)) for v in c[:-2]), []).append(c[-2:])
        updates = []
        try:
            for plane, pts in planes.items():
                if any(not 0 <= i < n for i, n in zip(plane, data.shape[:-2], strict=True)):
                    continue
                old = np.asarray(data[plane])
                new = change(old, np.array(pts), plane)
                updates.append((plane, old, new))
        except ValueError as err:
            _warn(str(err))
            return False
        self._write(layer, updates)
        points.data = np.empty((0, points.ndim))
        return True

    def _write(self, layer, updates) -> None:
        top = max((int(new.max(initial=0)) for _, _, new in updates), default=0)
        dtype = np.asarray(layer.data).dtype
        if np.issubdtype(dtype, np.integer) and top > np.iinfo(dtype).max:
            # new ids do not fit the layer's dtype: widen it (napari cannot undo this)
            data = np.asarray(layer.data).astype(np.result_type(dtype, np.int32))
            for plane, _old, new in updates:
                data[plane] = new
            layer.data = data
            self.refresh()
            return
        with layer.block_history():
            for plane, old, new in updates:
                changed = np.nonzero(new != old)
                index = tuple(np.full(changed[0].shape, i) for i in plane) + changed
                layer.data_setitem(index, new[changed].astype(dtype))
        self.refresh()

    # ------------------------------------------------------------ export
    def export(self, path, overwrite: bool = False) -> tuple[Path, Path] | None:
        """Write the table as CSV and the labels as a TIFF beside it.

        Parameters
        ----------
        path : path-like
            The CSV file (``.csv`` is appended if missing); the labels go to
            ``<stem>_labels.tif`` in the same folder.
        overwrite : bool
            Replace existing files; without it nothing is written if either exists.

        Returns
        -------
        (Path, Path) or None
            The CSV and TIFF written, or None (a message says why).
        """
        from napari.utils.notifications import show_error, show_info

        from .io import write_labels
        from .measure import write_csv

        layer = self.labels_layer
        if layer is None:
            show_error("Nothing to export: pick a labels layer.")
            return None
        if getattr(layer, "multiscale", False):
            show_error(f"'{layer.name}' is a multiscale labels layer; export a single-scale "
                       "copy (File > Save Selected Layer writes it as napari does).")
            return None
        self._refresh_if_changed(now=True)
        csv_path, tif_path = export_paths(path)
        existing = [p for p in (csv_path, tif_path) if p.exists()]
        if existing and not overwrite:
            show_error(
                f"{', '.join(str(p) for p in existing)} already exist(s); nothing was written. "
                "Choose another name."
            )
            return None
        try:
            write_labels(tif_path, np.asarray(layer.data), overwrite=overwrite,
                         metadata={"layer": layer.name})
            write_csv(csv_path, self.table, overwrite=overwrite)
        except (OSError, ValueError) as err:
            show_error(f"Could not export: {err}")
            return None
        show_info(f"Cell table written to {csv_path}, labels to {tif_path}")
        return csv_path, tif_path

    def _ask_export(self) -> None:
        layer = self.labels_layer
        default = f"{layer.name.replace(' ', '_')}.csv" if layer is not None else "cells.csv"
        path, _ = QFileDialog.getSaveFileName(
            self, "Export cell table", default, "CSV (*.csv)",
            options=QFileDialog.Option.DontConfirmOverwrite,
        )
        if path and confirm_replace(self, export_paths(path)):
            self.export(path, overwrite=any(p.exists() for p in export_paths(path)))


def _measure_job(layer, data: np.ndarray, heatmap, image, scale) -> tuple:
    """Measure ``data`` (a copy of ``layer``'s labels): ``(layer, data, table, error)``."""
    from .measure import cell_table

    try:
        return layer, data, cell_table(data, heatmap=heatmap, image=image, scale=scale), None
    except ValueError as err:
        return layer, data, {}, str(err)


def export_paths(path) -> tuple[Path, Path]:
    """The CSV path (``.csv`` added if missing) and the labels TIFF beside it."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        path = path.with_name(path.name + ".csv")
    return path, path.with_name(f"{path.stem}_labels.tif")


def _merged_features(existing, table: dict):
    """The layer's new ``features``: the measured table, keeping columns of others.

    Columns that this panel does not measure (a class typed in by hand,
    another plugin's scores) are carried over by label, through the
    ``index`` column napari uses to join features to labels; a cell new
    since gets no value. Without such an index (or for a stack, whose
    labels repeat across planes) they cannot be joined, and the features
    are left as they are (None is returned): the table is still shown.
    """
    import pandas as pd

    ours = set(table) | {"index"}
    extra = [c for c in getattr(existing, "columns", []) if c not in ours]
    stack = "plane" in table
    features = pd.DataFrame(table if stack else {"index": table["label"], **table})
    if not extra:
        return features
    if stack or "index" not in existing.columns:
        return None
    keyed = existing.drop_duplicates("index").set_index("index")
    for column in extra:
        features[column] = features["index"].map(keyed[column]).to_numpy()
    return features


def _set_items(box: QComboBox, items: list[str]) -> None:
    current = box.currentText()
    box.blockSignals(True)
    box.clear()
    box.addItems(items)
    if current in items:
        box.setCurrentText(current)
    box.blockSignals(False)
    if box.currentText() != current:
        box.currentTextChanged.emit(box.currentText())


def _data_like(layer, shape: tuple[int, ...]):
    """A layer's data if it fits a labels shape (or has a channel axis more)."""
    if layer is None or layer.multiscale:
        return None
    data = np.asarray(layer.data)
    fits = data.shape == shape or (data.ndim == len(shape) + 1 and data.shape[:-1] == shape)
    return data if fits else None


def _fmt(value) -> str:
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    value = float(value)
    return "" if math.isnan(value) else f"{value:.{SHOWN_DECIMALS}f}"


def _unit(layer) -> str:
    if layer is None or np.allclose(layer.scale[-2:], 1.0):
        return "px"
    units = getattr(layer, "units", None)
    unit = str(units[-1]) if units else ""
    return unit if unit and unit != "pixel" else "units"


def _warn(message: str) -> None:
    from napari.utils.notifications import show_warning

    show_warning(message)
