"""Progress reports from long-running generators.

Long work in the core (heatmaps, stacks, training) is written as a generator
that yields :class:`Progress` and *returns* its result. Front ends decide how
to show it: the napari widgets run the generator in a ``thread_worker`` and
drive a progress bar, the command line shows a text bar, and the plain
Python API just runs it to the end with :func:`run`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    """One progress report.

    Parameters
    ----------
    step : int
        Units of work done so far.
    total : int
        Units of work in all (``step == total`` when finished).
    message : str
        What is being done, for a status line.
    info : dict
        Extra numbers for live read-outs (for example the training loss).
    """

    step: int
    total: int
    message: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        """Share of the work done, in ``[0, 1]``."""
        return 1.0 if self.total <= 0 else min(1.0, self.step / self.total)


@dataclass(frozen=True)
class Failure:
    """What a job returns when it ends with a message for the user instead of a result.

    The widgets' background jobs return it for problems with the user's
    input (a bad folder, image or model file); anything else is a bug and
    propagates.
    """

    message: str


Steps = Generator[Progress, None, T]


def run(steps: Steps[T], callback: Callable[[Progress], object] | None = None) -> T:
    """Run a progress generator to completion and return its result.

    Parameters
    ----------
    steps : generator
        A generator yielding :class:`Progress` and returning a value.
    callback : callable, optional
        Called with every :class:`Progress` as it arrives.

    Returns
    -------
    object
        The generator's return value.
    """
    while True:
        try:
            report = next(steps)
        except StopIteration as stop:
            return stop.value
        if callback is not None:
            callback(report)
