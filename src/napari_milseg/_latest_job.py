"""Background work that only the newest request needs: re-splits and re-measures.

A slider drag or a brush stroke asks for the same work many times a
second. On a small image it is done at once; on a large one (more than
:data:`LIVE_PIXELS`) :class:`LatestJob` runs it in a napari worker, one
job at a time, and a request made while one runs only replaces the one
that runs next. So napari stays responsive and the last request always
wins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QObject

#: Above this many pixels (all planes together) the widgets re-split and
#: re-measure in the background; below it at once (a 640x480 smear re-splits
#: in about 25 ms, this size in about 0.2 s).
LIVE_PIXELS = 2_000_000


class LatestJob(QObject):
    """One background job at a time, and after it only the newest request.

    Parameters
    ----------
    done : callable
        Called in napari's thread with a job's result, unless a newer
        request came (or :meth:`drop` was called) after the job started.
    parent : QObject
        The owning widget; when it is deleted, results stop arriving.
    """

    def __init__(self, done: Callable[[Any], None], parent: QObject) -> None:
        super().__init__(parent)
        self._done = done
        self._running = None
        self._next: tuple[Callable, tuple] | None = None
        self._stale = False

    @property
    def busy(self) -> bool:
        """Whether a job runs or waits."""
        return self._running is not None or self._next is not None

    def request(self, func: Callable, *args) -> None:
        """Run ``func(*args)`` in a worker now, or after the running job."""
        self._next = (func, args)
        if self._running is None:
            self._start()

    def drop(self) -> None:
        """Forget the waiting request and ignore the running job's result."""
        self._next = None
        self._stale = True

    def _start(self) -> None:
        from napari.qt.threading import create_worker

        func, args = self._next
        self._next, self._stale = None, False
        worker = create_worker(func, *args, _start_thread=False)
        # bound methods: Qt drops them when this object goes with its widget
        worker.returned.connect(self._on_returned)
        worker.finished.connect(self._on_finished)
        self._running = worker
        worker.start()

    def _on_returned(self, result) -> None:
        if self._next is None and not self._stale:
            self._done(result)

    def _on_finished(self) -> None:
        self._running = None
        if self._next is not None:
            self._start()
