"""The "Segment cells" dock widget: wires napari layers and controls to the core.

Nothing here computes anything itself: the network runs in
:func:`napari_milseg.segmentation.segment_steps` (or the stack version) in a
napari ``thread_worker``, and the sliders call
:func:`napari_milseg.cells.label_cells` on the cached heatmap. What this
module owns is the layer bookkeeping: which ``<image> heatmap`` and
``<image> cells`` layers belong to which image, updating them in place, and
never overwriting a cells layer the user has edited by hand.

Other widgets make a model active here with :meth:`SegmentWidget.set_model`;
see its docstring for how to reach the docked widget.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleSlider

from ._dialogs import confirm_replace
from ._job_panel import JobPanel
from ._latest_job import LIVE_PIXELS, LatestJob
from ._layer_names import LayerNames
from ._layers import (
    EDIT_DELAY_MS,
    EDIT_EVENTS,
    ROLE_KEY,
    follow_placement,
    free_name,
    is_image_layer,
    label_planes,
    layer_role,
    placement,
    same_labels,
)
from .params import DEFAULT_INNER, DEFAULT_OUTER, SegmentParams, diameter_from_text
from .progress import Failure

if TYPE_CHECKING:  # pragma: no cover
    import napari

log = logging.getLogger(__name__)

#: Smallest gap the widget keeps between the two thresholds.
THRESHOLD_GAP = 0.01
BUNDLED_LABEL = "bundled (CBC smears)"


@dataclass
class _Result:
    """What the widget remembers about one segmented image."""

    image: Any  # napari.layers.Image
    heatmap: np.ndarray
    heatmap_layer: Any = None
    cells_layer: Any = None
    #: a copy of the labels last written to ``cells_layer``, to detect hand edits
    written: np.ndarray | None = None
    #: the cell diameter (px) the heatmap was made for; None skips the merge of wide cells
    diameter: float | None = None


def _resplit_job(
    heatmap: np.ndarray,
    inner: float,
    outer: float,
    diameter: float | None,
    image,
    rgb: bool,
    token: object,
):
    """Worker body: label every plane of a heatmap; ``token`` says which request it was."""
    return token, label_planes(heatmap, inner, outer, diameter, image, rgb)


def _segment_job(data, params: SegmentParams, model, rgb: bool, stack: bool):
    """Worker body: load the model, run the core generator, pass results on.

    Problems with the user's input (image or model file) come back as a
    :class:`Failure`; anything else is a bug and propagates to napari.
    """
    from .model import ModelError, load_model
    from .preprocess import ImageError
    from .progress import Progress
    from .segmentation import segment_stack_steps, segment_steps

    try:
        yield Progress(0, 1, "loading the model")
        model = load_model(model)
        steps = segment_stack_steps if stack else segment_steps
        result = yield from steps(data, params, model, rgb)
    except (ImageError, ModelError) as err:
        return Failure(str(err))
    except MemoryError:
        return Failure("not enough memory to segment this image; try a smaller image or crop")
    return result, model


class SegmentWidget(JobPanel, QWidget):
    """Dock widget: segment an image layer, re-split live, export labels.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer whose layers this widget reads and writes.

    Signals
    -------
    model_changed(str)
        Emitted with the display name of the newly active model.
    """

    model_changed = Signal(str)

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self._model = None  # None: the bundled model, loaded on first use
        self._model_diameter: float | None = None
        self._results: dict[Any, _Result] = {}
        self._job_image = None
        self._job_split = None
        self._updating = False
        # re-splits of large heatmaps run in a worker, the newest request last
        self._splits = LatestJob(self._on_resplit, self)
        self._edit_timer = QTimer(self)
        self._edit_timer.setSingleShot(True)
        self._edit_timer.setInterval(EDIT_DELAY_MS)
        self._edit_timer.timeout.connect(self._on_cells_edited)
        self._build()
        self._refresh_images()
        self._select_active()
        layers = self.viewer.layers
        layers.events.inserted.connect(self._on_layers_changed)
        layers.events.removed.connect(self._on_layers_changed)
        layers.events.removed.connect(self._on_layer_removed)
        layers.selection.events.active.connect(self._select_active)
        # a renamed layer keeps its place in the picker (and stays picked)
        self._layer_names = LayerNames(layers, [self.image_picker])

    # ------------------------------------------------------------ layout
    def _build(self) -> None:
        from qtpy.QtWidgets import QComboBox

        self.image_picker = QComboBox()
        self.image_picker.setToolTip("The image layer to segment")
        self.image_picker.currentTextChanged.connect(self._on_image_changed)

        self.model_label = QLabel(BUNDLED_LABEL)
        self.model_label.setWordWrap(True)
        self.load_button = QPushButton("Load model file…")
        self.load_button.clicked.connect(self._ask_model)
        self.bundled_button = QPushButton("Use bundled model")
        self.bundled_button.clicked.connect(lambda: self.set_model(None))
        model_buttons = QHBoxLayout()
        model_buttons.addWidget(self.load_button)
        model_buttons.addWidget(self.bundled_button)

        self.diameter_edit = QLineEdit()
        self.diameter_edit.setToolTip(
            "Expected cell diameter in pixels; empty or 0 uses the diameter the model "
            "was trained on"
        )
        self.diameter_edit.textChanged.connect(self._check_inputs)
        self._update_diameter_placeholder()
        self.estimate_button = QPushButton("Estimate")
        self.estimate_button.setToolTip(
            "Estimate the cell diameter from the picked image (every plane of a stack) "
            "and put it in the field; from a single image it is rough"
        )
        self.estimate_button.clicked.connect(self.estimate_diameter)
        self._estimating = None
        diameter_row = QHBoxLayout()
        diameter_row.addWidget(self.diameter_edit)
        diameter_row.addWidget(self.estimate_button)

        self.closer_check = QCheckBox("closer look for platelets")
        self.closer_check.setChecked(SegmentParams().closer_look)
        self.closer_check.setToolTip(
            "Also run the network on the image enlarged twice and add the small cells "
            "(platelets) it resolves: finds about twice as many platelets. Untick for "
            "about half the time. Applies at the next Segment."
        )

        # outer < inner always: the two ranges are offset by the gap
        self.inner_slider = self._slider(
            DEFAULT_INNER, 2 * THRESHOLD_GAP, 1 - THRESHOLD_GAP,
            "Heatmap level of cell cores: each connected core is one cell",
        )
        self.outer_slider = self._slider(
            DEFAULT_OUTER, THRESHOLD_GAP, 1 - 2 * THRESHOLD_GAP,
            "Heatmap level of cell extent; a region above it with no core is a cell "
            "of its own; kept below inner",
        )
        self.inner_slider.valueChanged.connect(self._on_inner)
        self.outer_slider.valueChanged.connect(self._on_outer)
        self.joined_check = QCheckBox("split joined red cells")
        self.joined_check.setChecked(SegmentParams().split_joined)
        self.joined_check.setToolTip(
            "Cut a cell that holds two round red cells pressed together into them "
            "(white cells, told by their colour, stay whole). Applies at once, like the "
            "sliders; each split takes a little longer."
        )
        self.joined_check.toggled.connect(lambda _checked: self._relabel())

        self.run_button = QPushButton("Segment")
        self.run_button.clicked.connect(self._on_run_clicked)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self.count_label = QLabel("")
        self.export_button = QPushButton("Export labels…")
        self.export_button.clicked.connect(self._ask_export)

        form = QFormLayout()
        form.addRow("image", self.image_picker)
        form.addRow("model", self.model_label)
        form.addRow("", model_buttons)
        form.addRow("cell diameter", diameter_row)
        form.addRow("", self.closer_check)
        form.addRow("inner", self.inner_slider)
        form.addRow("outer", self.outer_slider)
        form.addRow("", self.joined_check)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.run_button)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status_label)
        layout.addWidget(self.count_label)
        layout.addWidget(self.export_button)
        layout.addStretch(1)

    def _slider(self, value: float, low: float, high: float, tip: str) -> QLabeledDoubleSlider:
        slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        slider.setRange(low, high)
        slider.setSingleStep(THRESHOLD_GAP)
        slider.setValue(value)
        slider.setToolTip(tip)
        return slider

    # ------------------------------------------------------------ public API
    @property
    def inner(self) -> float:
        """Current marker threshold."""
        return round(float(self.inner_slider.value()), 4)

    @property
    def outer(self) -> float:
        """Current extent threshold."""
        return round(float(self.outer_slider.value()), 4)

    @property
    def image_layer(self):
        """The image layer picked for segmentation, or None."""
        name = self.image_picker.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    @property
    def cells_layer(self):
        """The labels layer this widget writes for the picked image, or None."""
        result = self._result()
        return result.cells_layer if result is not None else None

    @property
    def heatmap_layer(self):
        """The heatmap layer this widget writes for the picked image, or None."""
        result = self._result()
        return result.heatmap_layer if result is not None else None

    @property
    def model(self):
        """The active model: a loaded ``MilModel``, or None for the bundled one."""
        return self._model

    @property
    def model_name(self) -> str:
        """Display name of the active model."""
        return self.model_label.text()

    def set_model(self, model=None) -> bool:
        """Make a model the active one for the next Segment click.

        This is the hook for other widgets (the fine-tune widget): reach the
        docked Segment widget with
        ``_, seg = viewer.window.add_plugin_dock_widget("napari-milseg", "Segment cells")``
        (it returns the open one, or opens it), or without opening it with
        ``viewer.window.dock_widgets.get("Segment cells (napari-milseg)")``,
        and call ``seg.set_model(model)``. :attr:`model_changed` is emitted.

        Parameters
        ----------
        model : MilModel, path-like or None
            A loaded model (used as is), a weights file (loaded now, which
            imports torch), or None for the bundled model (loaded when needed).

        Returns
        -------
        bool
            False if a file could not be loaded; the error is shown in
            napari's notifications and the previous model stays active.
        """
        from napari.utils.notifications import show_error

        if model is None:
            self._model, self._model_diameter, name = None, None, BUNDLED_LABEL
        else:
            from .model import ModelError, load_model

            try:
                loaded = load_model(model)
            except ModelError as err:
                show_error(f"Could not load the model: {err}")
                return False
            self._model, self._model_diameter, name = loaded, loaded.diameter, loaded.name
        self.model_label.setText(name)
        tip = str(getattr(self._model, "source", "bundled"))
        if tip not in ("bundled", "new"):
            tip = str(Path(tip).resolve())  # the full path, also of a relative 'save to'
        turn = float(getattr(self._model, "colour_turn", 0.0))
        if turn % 360:
            tip += f"\nturns the images' colours by {turn:+g}° before segmenting"
        self.model_label.setToolTip(tip)
        self._update_diameter_placeholder()
        self.model_changed.emit(name)
        return True

    def segment(self) -> bool:
        """Start segmenting the picked image in the background (as the Segment button).

        Returns
        -------
        bool
            True if a run started; False if one is already running or the
            input is unusable (a message says why).
        """
        from napari.utils.notifications import show_error

        if self.running:
            return False
        image = self.image_layer
        try:
            params = self._params()
            data, rgb, stack = _image_input(image)
        except ValueError as err:
            show_error(str(err))
            return False
        self._job_image = image
        self._job_split = (params.inner, params.outer, params.split_joined)
        self._launch(_segment_job, data, params, self._model, rgb, stack,
                     status=f"segmenting {image.name}…")
        return True

    _start_from_button = segment

    def estimate_diameter(self) -> bool:
        """Estimate the picked image's cell diameter in the background (as the Estimate button).

        When done, the estimate goes into the cell diameter field. It looks
        at the image's colour foreground only, not at the model (see
        :func:`napari_milseg.estimate_cell_diameter`).

        Returns
        -------
        bool
            True if the estimate started; False if one is running or there
            is no usable image (a message says why).
        """
        from napari.qt.threading import create_worker
        from napari.utils.notifications import show_error

        if self._estimating is not None:
            return False
        image = self.image_layer
        try:
            data, rgb, _ = _image_input(image)
        except ValueError as err:
            show_error(str(err))
            return False
        worker = create_worker(_estimate_job, data, rgb, image.name, _start_thread=False)
        worker.returned.connect(self._on_estimated)
        worker.finished.connect(self._on_estimate_finished)
        self._estimating = worker
        self.estimate_button.setEnabled(False)
        self._set_status(f"estimating the cell diameter of {image.name}…")
        worker.start()
        return True

    def _on_estimated(self, out) -> None:
        from napari.utils.notifications import show_error

        from .diameter import FEW_IMAGES

        if isinstance(out, Failure):
            self._set_status("cell diameter not estimated")
            show_error(out.message)
            return
        diameter, planes = out
        self.diameter_edit.setText(f"{diameter:.0f}")
        where = "1 image" if planes == 1 else f"{planes} planes"
        self._set_status(
            f"cell diameter estimated from {where}: {diameter:.0f} px"
            + ("" if planes >= FEW_IMAGES else "; from so few it can be off by half or "
               "more, check it against a cell")
        )

    def _on_estimate_finished(self) -> None:
        self._estimating = None
        self.estimate_button.setEnabled(True)

    def show_result(
        self,
        image,
        heatmap: np.ndarray,
        labels: np.ndarray | None = None,
        diameter: float | None = None,
    ) -> None:
        """Show a heatmap for an image layer and label it with the current thresholds.

        Writes (or updates in place) ``<image> heatmap`` and ``<image> cells``;
        the Segment button ends here, and so can scripts and tests that have a
        heatmap already. A heatmap of more than :data:`LIVE_PIXELS` pixels is
        split in the background, so its cells layer follows a moment later.

        Parameters
        ----------
        image : napari.layers.Image
            The layer the heatmap belongs to.
        heatmap : ndarray, shape (..., H, W), float
            Cell probability per pixel, in ``[0, 1]``, for every plane of ``image``.
        labels : ndarray, shape (..., H, W), int, optional
            The heatmap already split at the current thresholds (as
            :func:`napari_milseg.segment` returns it), used as is.
        diameter : float, optional
            The cell diameter (px) the heatmap was made for
            (``Segmentation.diameter``). Every split of this heatmap passes
            it to :func:`napari_milseg.label_cells`, which then merges the
            pieces of wide cells as :func:`napari_milseg.segment` does (and,
            with **split joined red cells** ticked, splits joined red cells,
            reading the image's pixels); without it neither is done.
        """
        heatmap = np.asarray(heatmap, dtype=np.float32)
        result = self._results.get(image)
        if result is None:
            result = self._results[image] = _Result(image=image, heatmap=heatmap)
        result.heatmap = heatmap
        result.diameter = diameter
        self._write_heatmap(result)
        if labels is not None:
            self._splits.drop()  # a split of an older heatmap is stale
            self._write_cells(result, np.asarray(labels, dtype=np.int32))
        else:
            self._resplit(result)

    def export_labels(self, path, overwrite: bool = False) -> Path | None:
        """Write the picked image's cells layer (with any hand edits) to a TIFF.

        Parameters
        ----------
        path : path-like
            Destination; ``.tif`` is appended unless it ends in ``.tif``/``.tiff``.
        overwrite : bool
            Replace an existing file. Without it an existing file is left
            alone and an error is shown.

        Returns
        -------
        Path or None
            The written file, or None if nothing was written (a message says why).
        """
        from napari.utils.notifications import show_error, show_info

        from .io import write_labels

        layer = self.cells_layer
        if layer is None or layer not in self.viewer.layers:
            show_error("Nothing to export yet: segment an image first.")
            return None
        if Path(path).is_dir() or str(path).endswith(("/", "\\")):
            show_error(f"{path} is a folder; give the name of the TIFF file to write.")
            return None
        path = Path(path)
        if path.suffix.lower() not in (".tif", ".tiff"):
            path = path.with_name(path.name + ".tif")
        meta = {"layer": layer.name, "scale": [float(s) for s in layer.scale]}
        try:
            written = write_labels(path, np.asarray(layer.data), overwrite=overwrite, metadata=meta)
        except FileExistsError:
            show_error(f"{path} already exists; it was not overwritten. Choose another name.")
            return None
        except (OSError, ValueError) as err:
            show_error(f"Could not export the labels: {err}")
            return None
        show_info(f"Labels of '{layer.name}' written to {written}")
        return written

    # ------------------------------------------------------------ running
    def _params(self) -> SegmentParams:
        return SegmentParams(
            inner=self.inner,
            outer=self.outer,
            diameter=self._diameter_value(),
            closer_look=self.closer_check.isChecked(),
            split_joined=self.joined_check.isChecked(),
        )

    def _diameter_value(self) -> float | None:
        return diameter_from_text(self.diameter_edit.text())

    def _on_progress(self, report) -> None:
        self.progress_bar.setRange(0, max(report.total, 1))
        self.progress_bar.setValue(min(report.step, max(report.total, 1)))
        self._set_status(report.message)

    def _on_aborted(self) -> None:
        self._set_status("cancelled")

    def _on_returned(self, out) -> None:
        from napari.utils.notifications import show_error, show_warning

        image = self._job_image

        if isinstance(out, Failure):
            self._set_status("failed")
            show_error(out.message)
            return
        segmentation, model = out
        if self._model is None and self._model_diameter is None:
            self._model_diameter = model.diameter
            self._update_diameter_placeholder()
        if image not in self.viewer.layers:
            show_warning(f"'{image.name}' was removed during segmentation; result dropped.")
            return
        # the worker split the map at the thresholds (and split of joined cells)
        # of the click; reuse that unless the sliders or the box have changed since
        same = self._job_split == (self.inner, self.outer, self.joined_check.isChecked())
        self.show_result(
            image, segmentation.heatmap, segmentation.labels if same else None,
            diameter=segmentation.diameter,
        )
        self._set_status(f"done ({model.name})")

    def _on_finished(self) -> None:
        self._job_image = None
        self._job_ended("Segment", done=True)

    # ------------------------------------------------------------ layers
    def _result(self) -> _Result | None:
        image = self.image_layer
        return self._results.get(image) if image is not None else None

    def _write_heatmap(self, result: _Result) -> None:
        layer = result.heatmap_layer
        if layer is not None and layer in self.viewer.layers:
            layer.data = result.heatmap
            follow_placement(layer, result.image)
            return
        image = result.image
        result.heatmap_layer = self.viewer.add_image(
            result.heatmap,
            name=free_name(self.viewer.layers, f"{image.name} heatmap"),
            colormap="inferno",
            blending="additive",
            opacity=0.6,
            contrast_limits=(0.0, 1.0),
            **placement(image),
            metadata={ROLE_KEY: {"role": "heatmap", "image": image.name}},
        )

    def _write_cells(self, result: _Result, labels: np.ndarray) -> None:
        """Put new labels in the cells layer, unless the user has edited it.

        An edited layer is left as it is and the labels go to a new layer,
        ``<image> cells [2]`` and so on, which becomes the one updated from
        then on.
        """
        from napari.utils.notifications import show_info

        layer = result.cells_layer
        alive = layer is not None and layer in self.viewer.layers
        untouched = alive and same_labels(layer.data, result.written)
        # note what is written before writing: the layer's data event reads it
        result.written = labels.copy()
        if untouched:
            layer.data = labels
            follow_placement(layer, result.image)
        else:
            image = result.image
            name = free_name(self.viewer.layers, f"{image.name} cells")
            if alive:
                show_info(
                    f"'{layer.name}' has hand edits, so it was kept as it is; "
                    f"the new cells are in '{name}'."
                )
                self._set_status(f"new cells written to '{name}'")
            layer = self.viewer.add_labels(
                labels,
                name=name,
                **placement(image),
                metadata={ROLE_KEY: {"role": "cells", "image": image.name}},
            )
            for name in EDIT_EVENTS:
                getattr(layer.events, name).connect(self._on_cells_event)
            result.cells_layer = layer
        if self._result() is result:  # the count line speaks of the picked image
            self._show_count(labels)

    def _show_count(self, labels: np.ndarray) -> None:
        if labels.ndim == 2:
            count = int(np.count_nonzero(np.bincount(labels.ravel())[1:]))
            self.count_label.setText(f"{count} cell{'s' if count != 1 else ''}")
            return
        planes = labels.reshape(-1, *labels.shape[-2:])
        counts = [int(np.count_nonzero(np.bincount(p.ravel())[1:])) for p in planes]
        self.count_label.setText(
            f"{sum(counts)} cells in {len(counts)} planes "
            f"({min(counts)} to {max(counts)} per plane)"
        )

    def _on_cells_event(self, event=None) -> None:
        self._edit_timer.start()  # coalesce a brush drag's many events

    def _on_cells_edited(self) -> None:
        result = self._result()
        if result is None or result.cells_layer is None:
            return
        data = np.asarray(result.cells_layer.data)
        self._show_count(data)
        if not same_labels(data, result.written):
            self._set_status(
                f"'{result.cells_layer.name}' has hand edits: new thresholds or runs "
                "will go to a new layer"
            )

    def _relabel(self) -> None:
        result = self._result()
        if result is None or self._updating:
            return
        self._resplit(result)

    def _resplit(self, result: _Result) -> None:
        """Label ``result``'s heatmap at the sliders' thresholds into its cells layer.

        Small heatmaps are split at once. Large ones (more than
        :data:`LIVE_PIXELS`, a big image or a stack) are split in a worker,
        one at a time: while one runs, further slider moves only replace
        the request that runs next, so a drag ends with the thresholds it
        stopped at and napari stays responsive.
        """
        inner, outer = self.inner, self.outer
        image = result.image
        plane = image.data.shape[:-1] if image.rgb else image.data.shape
        if tuple(plane) != result.heatmap.shape:
            # the image's pixels were replaced since: this heatmap is not of them
            self._results.pop(image, None)
            self._set_status(f"'{image.name}' changed since it was segmented: click Segment")
            self.count_label.setText("")
            return
        # the split of joined cells reads the image's pixels (None: no split)
        data = image.data if self.joined_check.isChecked() else None
        rgb = bool(image.rgb)
        if result.heatmap.size <= LIVE_PIXELS:
            labels = label_planes(result.heatmap, inner, outer, result.diameter, data, rgb)
            self._write_cells(result, labels)
            return
        self._set_status(f"splitting {result.image.name} at {inner:.2f} / {outer:.2f}…")
        token = (result, result.heatmap, inner, outer)
        self._splits.request(
            _resplit_job, result.heatmap, inner, outer, result.diameter, data, rgb, token
        )

    @property
    def splitting(self) -> bool:
        """Whether a re-split of a large heatmap is running or waiting."""
        return self._splits.busy

    def _on_resplit(self, out) -> None:
        (result, heatmap, inner, outer), labels = out
        if result.heatmap is not heatmap:
            return  # segmented again
        if result.image not in self.viewer.layers:
            self._set_status(f"'{result.image.name}' was removed; its split was dropped")
            return
        self._set_status(f"split at {inner:.2f} / {outer:.2f}")
        self._write_cells(result, labels)

    def _on_inner(self, value: float) -> None:
        if self._updating:
            return
        if self.outer_slider.value() > value - THRESHOLD_GAP:
            self._updating = True
            self.outer_slider.setValue(value - THRESHOLD_GAP)
            self._updating = False
        self._relabel()

    def _on_outer(self, value: float) -> None:
        if self._updating:
            return
        if self.inner_slider.value() < value + THRESHOLD_GAP:
            self._updating = True
            self.inner_slider.setValue(value + THRESHOLD_GAP)
            self._updating = False
        self._relabel()

    # ------------------------------------------------------------ pickers
    def _refresh_images(self) -> None:
        current = self.image_picker.currentText()
        names = [
            layer.name
            for layer in self.viewer.layers
            if is_image_layer(layer) and layer_role(layer) is None
        ]
        self.image_picker.blockSignals(True)
        self.image_picker.clear()
        self.image_picker.addItems(names)
        if current in names:
            self.image_picker.setCurrentText(current)
        self.image_picker.blockSignals(False)
        self._check_inputs()

    def _on_layers_changed(self, event=None) -> None:
        self._refresh_images()

    def _on_layer_removed(self, event) -> None:
        self._results.pop(event.value, None)

    def _select_active(self, event=None) -> None:
        active = self.viewer.layers.selection.active
        if active is not None and is_image_layer(active) and layer_role(active) is None:
            self.image_picker.setCurrentText(active.name)

    def _on_image_changed(self, name: str) -> None:
        result = self._result()
        if result is not None and result.cells_layer in self.viewer.layers:
            self._show_count(np.asarray(result.cells_layer.data))
        else:
            self.count_label.setText("")

    # ------------------------------------------------------------ inputs
    def _check_inputs(self) -> None:
        """Mark a bad diameter and disable Segment until it is fixed."""
        try:
            self._diameter_value()
        except ValueError as err:
            self.diameter_edit.setStyleSheet("border: 1px solid #d33;")
            self.diameter_edit.setToolTip(str(err))
            ok = False
        else:
            self.diameter_edit.setStyleSheet("")
            self.diameter_edit.setToolTip(
                "Expected cell diameter in pixels; empty or 0 uses the model's training diameter"
            )
            ok = True
        if not self.running:
            self.run_button.setEnabled(ok and self.image_picker.count() > 0)

    def _update_diameter_placeholder(self) -> None:
        if self._model_diameter is None:
            self.diameter_edit.setPlaceholderText("model's training diameter")
        else:
            self.diameter_edit.setPlaceholderText(f"{self._model_diameter:g} px (model's)")

    def _set_status(self, text: str) -> None:
        self.status_label.setText(text)

    def _ask_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Load a napari-milseg model", "", "Model files (*.pt);;All files (*)"
        )
        if path:
            self.set_model(path)

    def _ask_export(self) -> None:
        layer = self.cells_layer
        default = f"{layer.name.replace(' ', '_')}.tif" if layer is not None else "labels.tif"
        path, _ = QFileDialog.getSaveFileName(
            self, "Export labels", default, "TIFF (*.tif *.tiff)",
            options=QFileDialog.Option.DontConfirmOverwrite,
        )
        if not path:
            return
        path = Path(path)
        if path.suffix.lower() not in (".tif", ".tiff"):
            path = path.with_name(path.name + ".tif")
        if confirm_replace(self, [path]):
            self.export_labels(path, overwrite=path.exists())


def _estimate_job(data, rgb: bool, name: str) -> tuple[float, int] | Failure:
    """Background job of the Estimate button: ``(diameter, planes used)`` or a Failure."""
    from .diameter import estimate_diameter_steps, plane_indices
    from .preprocess import ImageError
    from .progress import run

    try:
        indices = plane_indices(data.shape, rgb)
        planes = (np.asarray(data[index]) for index in indices)
        diameter = run(estimate_diameter_steps(planes, len(indices), rgb))
    except (ValueError, ImageError) as err:
        return Failure(f"Could not estimate the cell diameter of '{name}': {err}")
    return diameter, len(indices)


def _image_input(layer) -> tuple[Any, bool, bool]:
    """Data, rgb flag and stack flag of an image layer, or a ValueError saying why not."""
    if layer is None:
        raise ValueError("Open an image first (File > Open, or File > Open Sample).")
    if not is_image_layer(layer):
        raise ValueError(f"'{layer.name}' is not an image layer; pick an image to segment.")
    if layer.multiscale:
        raise ValueError(
            f"'{layer.name}' is a multiscale (pyramid) image; segment a single-resolution "
            "image or a crop of it."
        )
    data = layer.data
    rgb = bool(layer.rgb)
    spatial = data.ndim - (1 if rgb else 0)
    if spatial < 2:
        raise ValueError(
            f"'{layer.name}' is {spatial}-D (shape {tuple(data.shape)}); cells need a 2D image."
        )
    if math.prod(data.shape) == 0:
        raise ValueError(f"'{layer.name}' is empty (shape {tuple(data.shape)}).")
    return data, rgb, spatial > 2
