"""The "Fine-tune model" dock widget: adapt the model to a lab's own smears.

Wiring only. The images are read by :mod:`napari_milseg.dataset`, the
network is trained by :func:`napari_milseg.train.train_steps` (the same code
as ``milseg train``), and the model and its card are written by
:mod:`napari_milseg.card`; all of it runs in a napari ``thread_worker``, so
reading hundreds of files or training for minutes never blocks the viewer.

At the end of every epoch the worker reports a copy of the model so far;
the widget keeps the latest one, so **Cancel** loses at most the epoch in
progress and offers to save and use the last finished one. A finished model
is saved where the user chose and becomes the active model of the
"Segment cells" widget, which shows it and has the way back to the bundled
model.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ._dialogs import confirm_replace
from ._finetune_job import MADE_WITH, Failure, Pending, finetune_job
from ._job_panel import JobPanel
from ._layer_names import LayerNames
from ._layers import is_image_layer, layer_role
from ._loss_plot import LossPlot
from .params import MIN_POSITIVES, TrainParams, diameter_from_text

if TYPE_CHECKING:  # pragma: no cover
    import napari

#: Choices of the starting model, in the order shown.
START_ACTIVE = "active model (Segment cells)"
START_BUNDLED = "bundled model"
START_FILE = "model file…"
#: Default file name offered when choosing where to save.
DEFAULT_NAME = "milseg_finetuned.pt"
_BAD = "border: 1px solid #d33;"


class FinetuneWidget(JobPanel, QWidget):
    """Dock widget: fine-tune the model on folders of positive (and negative) images.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer whose image layers may serve as positives and whose
        "Segment cells" widget receives the new model.

    Attributes
    ----------
    advanced : dict
        Further :class:`~napari_milseg.params.TrainParams` fields the panel
        does not show (``batch_size``, ``crops_per_image``, ``seed``,
        ``warmup_epochs``, ``mil_weight``, ``device``), for scripts and tests; empty uses
        the defaults, as ``milseg train`` does.

    Signals
    -------
    model_saved(str)
        Emitted with the path of a newly saved model.
    """

    model_saved = Signal(str)

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self._run: dict[str, Any] = {}
        self._last_model = None
        self._last_epoch = 0
        self._pending: Pending | None = None
        self._overwrite_ok: str | None = None  # a path the user agreed to replace
        self._saved: Path | None = None
        self.advanced: dict[str, Any] = {}
        self._build()
        self._refresh_layers()
        layers = self.viewer.layers
        layers.events.inserted.connect(self._on_layers_changed)
        layers.events.removed.connect(self._on_layers_changed)
        # a renamed layer keeps its place and its tick in the list
        self._layer_names = LayerNames(layers, [self.layers_list])
        self._check_inputs()

    # ------------------------------------------------------------ layout
    def _build(self) -> None:
        self.positive_edit = QLineEdit()
        self.positive_edit.setPlaceholderText("folder of images with cells")
        self.positive_edit.setToolTip(
            "A folder of images that contain cells (not searched recursively), an image "
            "file, or a .txt list of image paths. Files that are not images are skipped."
        )
        self.negative_edit = QLineEdit()
        self.negative_edit.setPlaceholderText("optional: background-only images")
        self.negative_edit.setToolTip(
            "Optional: images with no cells at all (empty background). Without them, "
            "background-only images are synthesized from the positives."
        )
        self.use_layers = QCheckBox("also use open image layers as positives")
        self.use_layers.toggled.connect(self._on_use_layers)
        self.layers_list = QListWidget()
        self.layers_list.setMaximumHeight(90)
        self.layers_list.setToolTip("Ticked image layers are added to the positive images")
        self.layers_list.itemChanged.connect(self._check_inputs)
        self.layers_list.setEnabled(False)

        defaults = TrainParams()
        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(0, 1000)
        self.epochs_spin.setValue(defaults.epochs)
        self.epochs_spin.setToolTip(
            "Passes over the positive images; 0 trains nothing and only sets the cell "
            "diameter and colour turn of the starting model (seconds)"
        )
        self.lr_edit = QLineEdit()
        self.lr_edit.setPlaceholderText("auto")
        self.lr_edit.setToolTip(
            "Learning rate; empty: 3e-4 when fine-tuning (1e-3 for a new network)"
        )
        self.diameter_edit = QLineEdit()
        self.diameter_edit.setPlaceholderText("estimate from the images")
        self.diameter_edit.setToolTip(
            "Typical cell diameter in the training images, in pixels; empty estimates it"
        )
        self.colour_box = QCheckBox("turn colours to the model's if that finds more cells")
        self.colour_box.setChecked(defaults.colour_turn == "auto")
        self.colour_box.setToolTip(
            "Before training, try turning the images' hues about their background colour "
            "and keep the turn under which the starting model finds the cells best (no turn "
            "unless the stain's hue hides the cells from it). The new model turns every "
            "image it segments the same way. Unticked, the starting model's turn is kept "
            "(none for the bundled model). Not used when starting from a new network."
        )
        self.start_combo = QComboBox()
        self.start_combo.addItems([START_ACTIVE, START_BUNDLED, START_FILE])
        self.start_combo.setToolTip("The model whose weights training starts from")
        self.start_combo.currentTextChanged.connect(self._on_start_changed)
        self.init_edit = QLineEdit()
        self.init_edit.setPlaceholderText("model file (.pt)")
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("where to save the new model (.pt)")
        self.out_edit.setToolTip(
            "The new model file; its card (data, counts, epochs, time, date) is written "
            "beside it with .json"
        )

        self.run_button = QPushButton("Fine-tune")
        self.run_button.clicked.connect(self._on_run_clicked)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self.loss_plot = LossPlot()
        self.keep_button = QPushButton("")
        self.keep_button.setVisible(False)
        self.keep_button.clicked.connect(lambda: self.keep_last_good())

        form = QFormLayout()
        form.addRow("positives", self._with_browse(self.positive_edit, self._ask_positive))
        form.addRow("negatives", self._with_browse(self.negative_edit, self._ask_negative))
        form.addRow("", self.use_layers)
        form.addRow("", self.layers_list)
        form.addRow("epochs", self.epochs_spin)
        form.addRow("learning rate", self.lr_edit)
        form.addRow("cell diameter", self.diameter_edit)
        form.addRow("stain colour", self.colour_box)
        form.addRow("start from", self.start_combo)
        self._init_row = self._with_browse(self.init_edit, self._ask_init)
        form.addRow("", self._init_row)
        form.addRow("save to", self._with_browse(self.out_edit, self._ask_out, "Choose…"))
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.run_button)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status_label)
        layout.addWidget(self.loss_plot)
        layout.addWidget(self.keep_button)
        layout.addStretch(1)
        for edit in (self.positive_edit, self.negative_edit, self.lr_edit, self.diameter_edit,
                     self.init_edit, self.out_edit):
            edit.textChanged.connect(self._check_inputs)
        self._on_start_changed(self.start_combo.currentText())

    def _with_browse(self, edit: QLineEdit, slot, text: str = "Browse…") -> QWidget:
        row = QWidget()
        box = QHBoxLayout(row)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(edit, 1)
        button = QPushButton(text)
        button.clicked.connect(slot)
        box.addWidget(button)
        return row

    # ------------------------------------------------------------ public API
    @property
    def last_good_epoch(self) -> int:
        """The last finished epoch of the current or last run (0 if none)."""
        return self._last_epoch

    @property
    def has_unsaved_model(self) -> bool:
        """Whether a model (the last good epoch after Cancel) waits to be saved."""
        return self._pending is not None

    @property
    def saved_path(self) -> Path | None:
        """Where the last model was saved, if any."""
        return self._saved

    def params(self) -> TrainParams:
        """Training parameters from the fields; ``ValueError`` says which one is wrong."""
        return TrainParams(
            epochs=int(self.epochs_spin.value()),
            learning_rate=self._lr_value(),
            diameter=self._diameter_value(),
            colour_turn="auto" if self.colour_box.isChecked() else "keep",
            **self.advanced,
        )

    def start(self) -> bool:
        """Start fine-tuning in the background (as the Fine-tune button).

        Returns
        -------
        bool
            True if a run started; False if one is running or the input is
            unusable (a napari notification says why).
        """
        from napari.utils.notifications import show_error

        if self.running:
            return False
        positives = [t] if (t := self.positive_edit.text().strip()) else []
        negatives = [t] if (t := self.negative_edit.text().strip()) else []
        layers = self._checked_layers()
        try:
            params = self.params()
            if not positives and not layers:
                raise ValueError(
                    "Choose a folder of positive images (with cells) or tick open image "
                    f"layers: at least {MIN_POSITIVES} images are needed."
                )
            init = self._init()
        except ValueError as err:
            show_error(str(err))
            return False
        destination = self._destination()
        if destination is None:
            return False
        out, overwrite = destination
        command = _command(positives, negatives, layers, params, init, out)

        self._run = {"command": command, "total_epochs": params.epochs, "started": time.time()}
        self._last_model, self._last_epoch, self._pending = None, 0, None
        self.keep_button.setVisible(False)
        self.loss_plot.clear()
        self._launch(finetune_job, positives, negatives, layers, params, init, out, overwrite,
                     command, status="reading images…")
        return True

    _start_from_button = start

    def keep_last_good(self, path: str | Path | None = None) -> Path | None:
        """Save the model kept after Cancel (or an unsaved result) and make it active.

        Parameters
        ----------
        path : path-like, optional
            Where to save; default the "save to" field. An existing file is
            replaced only after asking.

        Returns
        -------
        Path or None
            The saved model file, or None if nothing was saved (a message says why).
        """
        from napari.utils.notifications import show_error

        from .card import save_trained, training_card

        pending = self._pending
        if pending is None:
            show_error("No unsaved model to keep.")
            return None
        if path is not None:
            self.out_edit.setText(str(path))
        destination = self._destination()
        if destination is None:
            return None
        out, overwrite = destination
        card = training_card(
            pending.model, pending.positives, pending.negatives, command=pending.command,
            started=pending.started, interrupted_after_epoch=pending.interrupted_after_epoch,
            made_with=MADE_WITH,
        )
        try:
            saved, meta = save_trained(pending.model, out, card, overwrite=overwrite)
        except (OSError, ValueError) as err:
            show_error(f"Could not save the model to {out}: {err}")
            return None
        self._pending = None
        self.keep_button.setVisible(False)
        what = (
            f"the weights after epoch {pending.interrupted_after_epoch}"
            if pending.interrupted_after_epoch else "the fine-tuned model"
        )
        self._finish(pending.model, saved, meta, what)
        return saved

    # ------------------------------------------------------------ worker signals
    def _on_progress(self, report) -> None:
        info = report.info
        if "positives" in info:
            self._run.update(positives=info["positives"], negatives=info["negatives"],
                             started=info["started"])
        if report.total > 1 or report.step:
            self.progress_bar.setRange(0, max(report.total, 1))
            self.progress_bar.setValue(min(report.step, max(report.total, 1)))
        message = report.message
        if "left_out" in info:
            from napari.utils.notifications import show_warning

            from .dataset import left_out_text

            show_warning("Fine-tuning " + left_out_text(
                message, info["left_out"], self._run.get("positives"), self._run.get("negatives")
            ))
        if info.get("epoch_done"):
            self._last_model, self._last_epoch = info["model"], int(info["epoch"])
            self.loss_plot.add_epoch(float(info["loss"]))
            message += f" · mean loss {info['loss']:.4f}"
        elif "loss" in info:
            self.loss_plot.add_step(float(info["loss"]), report.total)
            message += f" · loss {info['loss']:.4f}"
        elif "file" in info:
            message += f" ({report.step + 1}/{report.total}: {info['file']})"
        if self.run_button.text() != "Cancelling…":
            self._set_status(message)

    def _on_returned(self, out) -> None:
        from napari.utils.notifications import show_error

        if isinstance(out, Failure):
            self._set_status("failed: " + out.message)
            show_error(out.message)
            return
        if out.error is not None:
            self._pending = self._pending_from(out.model, None)
            self._offer_keep("Save and use the fine-tuned model")
            self._set_status(out.error)
            show_error(out.error + ". Choose another place and click the button below.")
            return
        what = "the fine-tuned model"
        self._finish(out.model, out.path, out.card_path, what)

    def _on_aborted(self) -> None:
        from napari.utils.notifications import show_info

        total = self._run.get("total_epochs", 0)
        if self._last_model is None:
            self._set_status("cancelled before the first epoch finished; nothing to keep")
            return
        k = self._last_epoch
        self._pending = self._pending_from(self._last_model, k)
        self._offer_keep(f"Save and use the weights after epoch {k}")
        self._set_status(
            f"cancelled after epoch {k} of {total}; the weights of epoch {k} are kept: "
            "save them with the button below"
        )
        show_info(f"Fine-tuning cancelled after epoch {k} of {total}; its weights are kept.")

    def _on_finished(self) -> None:
        self._job_ended("Fine-tune", done=bool(self._saved or self._pending))

    # ------------------------------------------------------------ helpers
    def _pending_from(self, model, epoch: int | None) -> Pending:
        return Pending(
            model=model,
            positives=self._run.get("positives"),
            negatives=self._run.get("negatives"),
            started=self._run.get("started", time.time()),
            command=self._run.get("command"),
            interrupted_after_epoch=epoch,
        )

    def _offer_keep(self, text: str) -> None:
        self.keep_button.setText(text)
        self.keep_button.setVisible(True)

    def _finish(self, model, path: Path, meta: Path, what: str) -> None:
        from napari.utils.notifications import show_info, show_warning

        self._saved = path
        self.model_saved.emit(str(path))
        seg = self._segment_widget(create=True)
        active = seg is not None and seg.set_model(model)
        data = self._data_summary()
        if model.colour_turn % 360:
            data += f"; it turns colours by {model.colour_turn:+g}°"
        self._set_status(f"saved {what} to {path} (card: {meta.name}){data}")
        if active:
            show_info(
                f"Saved {what} to {path}; it is now the active model in Segment cells "
                f"('Use bundled model' goes back){data}."
            )
        else:
            show_warning(f"Saved {what} to {path}, but could not make it the active model.")

    def _data_summary(self) -> str:
        """'; trained on ...' with the images used and the files left out, or ''."""
        sets = [("positive", self._run.get("positives")), ("negative", self._run.get("negatives"))]
        parts = [f"{kind}: {images.summary()}" for kind, images in sets if images]
        verb = "adapted to" if self._run.get("total_epochs") == 0 else "trained on"
        return f"; {verb} " + "; ".join(parts) if parts else ""

    def _segment_widget(self, create: bool = False):
        """The docked Segment cells widget (opened if ``create``), or None."""
        from ._widget import SegmentWidget

        window = getattr(self.viewer, "window", None)
        if window is None:
            return None
        for widget in window.dock_widgets.values():
            if isinstance(widget, SegmentWidget):
                return widget
        if not create:
            return None
        try:
            _, widget = window.add_plugin_dock_widget("napari-milseg", "Segment cells")
        except Exception:  # plugin not registered (e.g. not installed): nothing to update
            return None
        return widget

    def _init(self):
        """The starting model: a loaded model, a path, or None for the bundled one."""
        mode = self.start_combo.currentText()
        if mode == START_BUNDLED:
            return None
        if mode == START_FILE:
            text = self.init_edit.text().strip()
            if not text:
                raise ValueError("Choose the model file to start from.")
            return text
        seg = self._segment_widget()
        return seg.model if seg is not None else None

    def _destination(self) -> tuple[Path, bool] | None:
        """The output path and whether replacing it was allowed; None (after a message) if not."""
        from napari.utils.notifications import show_error

        from .card import (
            DestinationError,
            DestinationExistsError,
            card_path,
            check_destination,
        )

        text = self.out_edit.text().strip()
        if not text:
            show_error("Choose where to save the new model (save to … Choose…).")
            return None
        out = Path(text).expanduser()
        if not out.suffix:
            out = out.with_suffix(".pt")
        # the bundled model, a folder or an unwritable place are refused before
        # the user is ever asked whether to replace a file
        overwrite = self._overwrite_ok == str(out)
        try:
            check_destination(out, overwrite)
        except DestinationExistsError:
            exists = [p for p in (out, card_path(out)) if p.exists()]
            if not self._confirm_overwrite(exists):
                return None
            overwrite = True
            try:
                check_destination(out, overwrite)
            except DestinationError as err:
                show_error(str(err))
                return None
        except DestinationError as err:
            show_error(str(err))
            return None
        return out, overwrite

    def _confirm_overwrite(self, paths: list[Path]) -> bool:
        return confirm_replace(self, paths, "the existing model")

    def _checked_layers(self) -> list[tuple[Any, str, bool]]:
        if not self.use_layers.isChecked():
            return []
        out = []
        for i in range(self.layers_list.count()):
            item = self.layers_list.item(i)
            if item.checkState() != Qt.CheckState.Checked:
                continue
            name = item.text()
            if name not in self.viewer.layers:
                continue
            layer = self.viewer.layers[name]
            data = layer.data[0] if layer.multiscale else layer.data
            out.append((data, f"layer:{name}", bool(layer.rgb)))
        return out

    def _lr_value(self) -> float | None:
        text = self.lr_edit.text().strip()
        if not text or text.lower() == "auto":
            return None
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"learning rate must be a number such as 3e-4, got {text!r}") from None
        if not (math.isfinite(value) and 0 < value < 1):
            raise ValueError(f"learning rate must be between 0 and 1, got {text}")
        return value

    def _diameter_value(self) -> float | None:
        return diameter_from_text(self.diameter_edit.text())

    def _check_inputs(self, *_) -> None:
        """Mark bad fields, explain them in their tooltips, disable Fine-tune until fixed."""
        from .card import DestinationError

        problems = []
        for edit, check in ((self.lr_edit, self._lr_value),
                            (self.diameter_edit, self._diameter_value),
                            (self.out_edit, self._check_out)):
            try:
                check()
            except (ValueError, DestinationError) as err:
                edit.setStyleSheet(_BAD)
                edit.setToolTip(str(err))
                problems.append(str(err))
            else:
                edit.setStyleSheet("")
        has_positives = bool(self.positive_edit.text().strip()) or bool(self._checked_names())
        if not has_positives:
            problems.append("choose a folder of positive images or tick open image layers")
        if not self.out_edit.text().strip():
            problems.append("choose where to save the new model")
        if self.start_combo.currentText() == START_FILE and not self.init_edit.text().strip():
            problems.append("choose the model file to start from")
        if not self.running:
            self.run_button.setEnabled(not problems)
            self.run_button.setToolTip("; ".join(problems) if problems else
                                       "Fine-tune the model on these images")

    def _check_out(self) -> None:
        from .model import bundled_model_path

        text = self.out_edit.text().strip()
        if not text:
            return
        out = Path(text).expanduser()
        if out.suffix.lower() == ".json":
            raise ValueError("a model file must not end in .json (that is its card's name)")
        try:
            bundled = out.resolve() == bundled_model_path().resolve()
        except OSError:
            bundled = False
        if bundled:
            raise ValueError("that is the bundled model, which is never replaced")

    def _checked_names(self) -> list[str]:
        if not self.use_layers.isChecked():
            return []
        return [
            self.layers_list.item(i).text()
            for i in range(self.layers_list.count())
            if self.layers_list.item(i).checkState() == Qt.CheckState.Checked
        ]

    def _set_status(self, text: str) -> None:
        self.status_label.setText(text)

    # ------------------------------------------------------------ layers
    def _refresh_layers(self) -> None:
        checked = set(self._all_checked())
        self.layers_list.blockSignals(True)
        self.layers_list.clear()
        for layer in self.viewer.layers:
            if not is_image_layer(layer) or layer_role(layer) is not None:
                continue
            item = QListWidgetItem(layer.name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(
                Qt.CheckState.Checked if layer.name in checked else Qt.CheckState.Unchecked
            )
            self.layers_list.addItem(item)
        self.layers_list.blockSignals(False)
        self._check_inputs()

    def _all_checked(self) -> list[str]:
        return [
            self.layers_list.item(i).text()
            for i in range(self.layers_list.count())
            if self.layers_list.item(i).checkState() == Qt.CheckState.Checked
        ]

    def _on_layers_changed(self, event=None) -> None:
        self._refresh_layers()

    def _on_use_layers(self, on: bool) -> None:
        self.layers_list.setEnabled(on)
        if on and not self._all_checked():
            # ticking the box with nothing chosen yet takes every image layer
            for i in range(self.layers_list.count()):
                self.layers_list.item(i).setCheckState(Qt.CheckState.Checked)
        self._check_inputs()

    def _on_start_changed(self, text: str) -> None:
        self._init_row.setVisible(text == START_FILE)
        self._check_inputs()

    # ------------------------------------------------------------ dialogs
    def _ask_folder(self, edit: QLineEdit, title: str) -> None:
        path = QFileDialog.getExistingDirectory(self, title, edit.text().strip())
        if path:
            edit.setText(path)

    def _ask_positive(self) -> None:
        self._ask_folder(self.positive_edit, "Folder of images with cells")

    def _ask_negative(self) -> None:
        self._ask_folder(self.negative_edit, "Folder of background-only images")

    def _ask_init(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Start from a napari-milseg model", "", "Model files (*.pt);;All files (*)"
        )
        if path:
            self.init_edit.setText(path)

    def _ask_out(self) -> None:
        default = self.out_edit.text().strip() or DEFAULT_NAME
        # Qt's save dialog asks before replacing an existing file
        path, _ = QFileDialog.getSaveFileName(
            self, "Save the fine-tuned model", default, "Model files (*.pt)"
        )
        if path:
            if not Path(path).suffix:
                path += ".pt"
            self._overwrite_ok = str(Path(path).expanduser()) if Path(path).exists() else None
            self.out_edit.setText(path)


def _command(positives, negatives, layers, params: TrainParams, init, out: Path) -> str | None:
    """The ``milseg train`` command that would do the same run, if there is one."""
    import shlex

    if layers:
        return None  # open layers have no command-line equivalent
    args = ["milseg", "train", "--positive", *positives]
    if negatives:
        args += ["--negative", *negatives]
    if isinstance(init, (str, Path)):
        args += ["--from-scratch"] if init == "scratch" else ["--init", str(init)]
    elif init is not None:
        source = getattr(init, "source", "")
        if source == "bundled":
            pass
        elif source and Path(source).exists():
            args += ["--init", source]
        else:
            return None  # an unsaved model
    args += ["--epochs", str(params.epochs)]
    if params.learning_rate is not None:
        args += ["--lr", repr(params.learning_rate)]
    if params.diameter is not None:
        args += ["--diameter", f"{params.diameter:g}"]
    defaults = TrainParams()
    for flag, name in (("--warmup-epochs", "warmup_epochs"), ("--mil-weight", "mil_weight"),
                       ("--batch-size", "batch_size"),
                       ("--crops-per-image", "crops_per_image"), ("--device", "device")):
        value = getattr(params, name)
        if value != getattr(defaults, name):
            args += [flag, str(value)]
    if params.colour_turn != defaults.colour_turn:
        turn = params.colour_turn
        args += ["--colour-turn", turn if isinstance(turn, str) else f"{turn:g}"]
    args += ["--seed", str(params.seed), "--out", str(out)]
    return shlex.join(args)
