"""What the two dock widgets share to run one background job at a time.

Segment cells and Fine-tune model each run their long work (a generator
that yields :class:`~napari_milseg.progress.Progress`) in a napari
``thread_worker``, with one button that starts the job and, while it runs,
cancels it. :class:`JobPanel` owns that part: the worker, its signals, the
button's Cancel state, stopping the job when the dock is closed, and the
reset when the job ends. The widgets keep what differs: how a job starts and
what its reports and result mean.
"""

from __future__ import annotations

from qtpy.QtCore import QEvent


class JobPanel:
    """Mix-in for a ``QWidget`` that runs one napari worker at a time.

    The widget provides ``run_button``, ``progress_bar``, ``_set_status``,
    ``_check_inputs``, ``_start_from_button`` (what the button does when no
    job runs) and the slots ``_on_progress``, ``_on_returned``,
    ``_on_aborted`` and ``_on_finished`` (which calls :meth:`_job_ended`).
    """

    _worker = None

    @property
    def running(self) -> bool:
        """Whether a job is running."""
        return self._worker is not None

    @property
    def worker(self):
        """The running napari worker, or None."""
        return self._worker

    def cancel(self) -> None:
        """Ask the running job to stop at its next step."""
        if self._worker is not None:
            self._worker.quit()
            self.run_button.setEnabled(False)
            self.run_button.setText("Cancelling…")
            self._set_status("cancelling at the end of the current step…")

    def _launch(self, job, *args, status: str) -> None:
        """Run ``job(*args)`` in a napari worker wired to this widget's slots."""
        from napari.qt.threading import create_worker

        worker = create_worker(job, *args, _start_thread=False)
        # bound methods, not lambdas: Qt drops them if this widget is deleted mid-run
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(self._on_returned)
        worker.aborted.connect(self._on_aborted)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        # the widget was deleted mid-run: stop the job at its next step
        self.destroyed.connect(worker.quit)
        self._worker = worker
        self.run_button.setText("Cancel")
        self._set_status(status)
        self.progress_bar.setRange(0, 0)  # busy until the first report
        worker.start()

    def _job_ended(self, button_text: str, done: bool) -> None:
        """Reset the button and the progress bar once the worker has finished."""
        self._worker = None
        self.run_button.setText(button_text)
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(1 if done else 0)
        self._check_inputs()

    def _on_errored(self, err) -> None:
        # jobs return a Failure for the errors they expect; this is a bug, and
        # napari also shows its traceback
        self._set_status(f"failed: {type(err).__name__}: {err}")

    def _on_run_clicked(self) -> None:
        if self.running:
            self.cancel()
        else:
            self._start_from_button()

    def event(self, event) -> bool:
        # napari's dock close button takes the widget out of its dock: stop the job
        if event.type() == QEvent.Type.ParentChange and self.parent() is None and self.running:
            self.cancel()
        return super().event(event)
