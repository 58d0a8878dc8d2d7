"""Segmenting many image files into an output folder.

This is what ``milseg segment`` runs, usable from Python as well. Images are
read, segmented and written one at a time, so a folder of thousands never
sits in memory. For every input ``<stem>.<ext>`` the output folder gets

- ``<stem>_labels.tif``: the labelled cells (uint16, or uint32 past 65535
  cells), one page per plane for stacks;
- ``<stem>_heatmap.tif``: the cell probability (float32), same shape;
- one or more rows in ``counts.csv`` (columns ``image,cells``). The image
  is the input's file name; the planes of a stack (multi-page TIFF, time or
  Z series) are segmented one by one and get one row each, named
  ``name[i]`` (``name[i,j]`` for two plane axes), ``i`` counting from 0.

Runs resume: an input whose two outputs exist is not segmented again (its
counts are read back from its labels file, so hand-corrected labels are
counted as they are now) unless ``overwrite`` is set. Existing files are
never replaced without ``overwrite``; ``counts.csv`` is merged: rows of
images outside this run are kept, rows of this run's images are updated.

Work can be spread over local processes (``workers``) or an existing
dask.distributed cluster (``scheduler``); each worker reads its image,
runs the network and writes the outputs itself, so inputs and the output
folder must be visible to the workers at the same paths. The results are
the same as in a single process.
"""

from __future__ import annotations

import functools
import itertools
import os
import traceback
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .io import (
    CountsTable,
    ImageReadError,
    load_image,
    read_counts,
    read_tiff_metadata,
    write_counts,
    write_heatmap,
    write_labels,
)
from .params import SegmentParams
from .preprocess import ImageError
from .progress import Progress, Steps, run

#: Name of the counts table in the output folder.
COUNTS_NAME = "counts.csv"
#: Suffixes of the per-image outputs.
LABELS_SUFFIX = "_labels.tif"
HEATMAP_SUFFIX = "_heatmap.tif"

#: Status of a :class:`FileResult`.
DONE, RESUMED, FAILED = "done", "resumed", "failed"


@dataclass(frozen=True)
class FileResult:
    """What happened to one input file.

    Attributes
    ----------
    path : str
        The input file.
    status : str
        ``"done"`` (segmented and written), ``"resumed"`` (outputs existed,
        counts read back) or ``"failed"``.
    counts : tuple of (str, int)
        ``counts.csv`` rows for this file, one per plane.
    message : str
        Why it failed (without the file name); empty otherwise.
    notes : tuple of str
        Things the user should know (warnings while reading or segmenting,
        outputs kept from another setting).
    unexpected : bool
        The failure was not a known problem with the input (likely a bug);
        ``detail`` then holds the traceback.
    detail : str
        Traceback text of an unexpected failure.
    """

    path: str
    status: str
    counts: tuple[tuple[str, int], ...] = ()
    message: str = ""
    notes: tuple[str, ...] = ()
    unexpected: bool = False
    detail: str = ""

    @property
    def ok(self) -> bool:
        """Whether the file has its outputs now."""
        return self.status in (DONE, RESUMED)


@dataclass
class BatchResult:
    """Outcome of :func:`segment_files_steps`.

    Attributes
    ----------
    results : list of FileResult
        One per input file, in input order.
    counts_path : Path or None
        The ``counts.csv`` written, or None when there was nothing to write.
    ignored : list of Path
        Inputs that are this tool's own outputs in the output folder.
    repeated : list of Path
        Inputs that name a file given before (by another path or twice);
        it is segmented once.
    """

    results: list[FileResult] = field(default_factory=list)
    counts_path: Path | None = None
    ignored: list[Path] = field(default_factory=list)
    repeated: list[Path] = field(default_factory=list)

    def by_status(self, status: str) -> list[FileResult]:
        """The results with one status."""
        return [r for r in self.results if r.status == status]


class SchedulerError(ConnectionError):
    """The dask scheduler given cannot be reached."""


def output_paths(path: str | os.PathLike, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """``(labels, heatmap)`` output paths of one input file.

    Examples
    --------
    >>> [p.name for p in output_paths("smears/a.jpg", "out")]
    ['a_labels.tif', 'a_heatmap.tif']
    """
    stem = Path(path).stem
    out_dir = Path(out_dir)
    return out_dir / f"{stem}{LABELS_SUFFIX}", out_dir / f"{stem}{HEATMAP_SUFFIX}"


def plane_names(name: str, lead_shape: tuple[int, ...]) -> list[str]:
    """``counts.csv`` image names of the planes of one file.

    Examples
    --------
    >>> plane_names("a.jpg", ())
    ['a.jpg']
    >>> plane_names("t.tif", (2,))
    ['t.tif[0]', 't.tif[1]']
    >>> plane_names("tz.tif", (1, 2))
    ['tz.tif[0,0]', 'tz.tif[0,1]']
    """
    if not lead_shape:
        return [name]
    return [f"{name}[{','.join(str(i) for i in index)}]" for index in np.ndindex(*lead_shape)]


def count_cells(labels: np.ndarray) -> list[int]:
    """Number of distinct non-zero labels in every 2D plane.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W) or (..., H, W)

    Returns
    -------
    list of int
        One count per plane, planes in C order (one entry for a 2D array).
    """
    labels = np.asarray(labels)
    planes = labels.reshape(-1, *labels.shape[-2:])
    counts = []
    for plane in planes:
        flat = plane.ravel()
        if flat.size == 0 or flat.max() <= 0:
            counts.append(0)
            continue
        counts.append(int(np.count_nonzero(np.bincount(flat[flat > 0].astype(np.int64)))))
    return counts


#: Settings that outputs record since a later version, with the value that
#: older outputs were made with.
LATER_SETTINGS = {"split_joined": False}


def settings_metadata(params: SegmentParams, model_name: str) -> dict:
    """What is stored in the output TIFFs to tell later runs how they were made."""
    return {
        "milseg": __version__,
        "inner": params.inner,
        "outer": params.outer,
        "diameter": params.diameter,
        "closer_look": params.closer_look,
        "split_joined": params.split_joined,
        "model": model_name,
    }


def _model_name(model) -> str:
    if model is None:
        return "bundled"
    name = getattr(model, "source", None)
    if name is not None:
        return "bundled" if name == "bundled" else Path(name).name
    return Path(model).name


def segment_file_steps(
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    params: SegmentParams,
    model=None,
    overwrite: bool = False,
) -> Steps[FileResult]:
    """Segment one file and write its outputs, as a progress generator.

    Parameters
    ----------
    path : path-like
        The image file (any format :func:`napari_milseg.io.load_image` reads).
    out_dir : path-like
        Existing output folder.
    params : SegmentParams
        Thresholds and cell diameter.
    model : MilModel, path-like or None
        As for :func:`napari_milseg.segment`.
    overwrite : bool
        Segment and replace outputs even if they exist.

    Yields
    ------
    Progress
        Per tile (single images) or per plane (stacks).

    Returns
    -------
    FileResult
        Status ``"done"`` or ``"resumed"``.

    Raises
    ------
    ImageReadError, ImageError
        For inputs that cannot be read or segmented.
    OSError
        If an output cannot be written (nothing half-written is left).
    """
    path = Path(path)
    labels_path, heatmap_path = output_paths(path, out_dir)
    wanted = settings_metadata(params, _model_name(model))
    for output in (labels_path, heatmap_path):
        if output.is_dir():
            raise ImageReadError(
                path, f"its output {output} is a folder; move or rename that folder"
            )
    source = _source_facts(path)
    if not overwrite and labels_path.exists() and heatmap_path.exists():
        return _resumed(path, labels_path, wanted, source)

    notes: list[str] = []
    image = _recording(lambda: load_image(path), notes)
    if image.is_stack:
        from .segmentation import segment_stack_steps

        steps = segment_stack_steps(image.data, params, model, rgb=image.rgb)
    else:
        from .segmentation import segment_steps

        steps = segment_steps(image.data, params, model, rgb=image.rgb)
    result = yield from _recording_steps(steps, notes)
    del image

    if overwrite or not heatmap_path.exists():
        write_heatmap(heatmap_path, result.heatmap, overwrite=overwrite,
                      metadata=wanted | source)
    if overwrite or not labels_path.exists():
        write_labels(labels_path, result.labels, overwrite=overwrite, metadata=wanted | source)
        lead, counts = result.labels.shape[:-2], count_cells(result.labels)
    else:
        # labels kept from an interrupted or edited earlier run: they are what counts
        notes.append(f"kept the existing {labels_path.name}; only the heatmap was written")
        lead, counts = _read_label_counts(labels_path)
    rows = tuple(zip(plane_names(path.name, lead), counts, strict=True))
    return FileResult(str(path), DONE, rows, notes=_unique(notes))


def _source_facts(path: Path) -> dict:
    """Name and SHA-256 of an input file, kept in its outputs to recognise it later."""
    import hashlib

    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return {}  # reading the image will report it
    return {"source_name": path.name, "source_sha256": digest.hexdigest()}


def _resumed(path: Path, labels_path: Path, wanted: dict, source: dict) -> FileResult:
    import tifffile

    try:
        labels = tifffile.imread(labels_path)
        made_with = read_tiff_metadata(labels_path)
    except Exception as err:  # tifffile raises many types for damaged files
        raise ImageReadError(
            labels_path,
            f"existing output cannot be read ({type(err).__name__}: {err}); "
            "delete it or use overwrite to redo this image",
        ) from None
    made_from = made_with.get("source_sha256")
    if made_from is not None and source and made_from != source["source_sha256"]:
        raise ImageReadError(
            path,
            f"the outputs {labels_path.name} in {labels_path.parent} were made from another "
            f"file of this name ({made_with.get('source_name', '?')}, different content); "
            "use overwrite to replace them, or another output folder",
        )
    notes = []
    made_with = LATER_SETTINGS | made_with  # outputs of older versions lack these
    changed = [
        f"{key}={made_with[key]!r} (now {wanted[key]!r})"
        for key in wanted
        if key != "milseg" and key in made_with and made_with[key] != wanted[key]
    ]
    if changed:
        notes.append(
            f"kept existing outputs made with {', '.join(changed)}; use overwrite to redo"
        )
    rows = tuple(zip(plane_names(path.name, labels.shape[:-2]), count_cells(labels), strict=True))
    return FileResult(str(path), RESUMED, rows, notes=tuple(notes))


def _read_label_counts(labels_path: Path) -> tuple[tuple[int, ...], list[int]]:
    import tifffile

    labels = tifffile.imread(labels_path)
    return labels.shape[:-2], count_cells(labels)


def _recording(call, notes: list[str]):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = call()
    notes.extend(str(w.message) for w in caught)
    return value


def _recording_steps(steps, notes: list[str]):
    """Drive a progress generator, turning its warnings into notes.

    Warnings are recorded only while the generator runs, never while the
    caller handles a report.
    """
    while True:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                report = next(steps)
                finished = False
            except StopIteration as stop:
                value = stop.value
                finished = True
        notes.extend(str(w.message) for w in caught)
        if finished:
            return value
        yield report


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def segment_file(
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    params: SegmentParams,
    model=None,
    overwrite: bool = False,
    progress=None,
) -> FileResult:
    """Segment one file, turning every problem into a failed :class:`FileResult`.

    Parameters
    ----------
    path, out_dir, params, model, overwrite
        As for :func:`segment_file_steps`.
    progress : callable, optional
        Called with every :class:`Progress`.

    Returns
    -------
    FileResult
        Never raises for a bad file, an unwritable output or an unexpected
        error; only ``KeyboardInterrupt`` and the like pass through.
    """
    try:
        return run(segment_file_steps(path, out_dir, params, model, overwrite), progress)
    except Exception as err:  # one odd file must not end a run over thousands
        return _failure(path, err)


def _failure(path: str | os.PathLike, err: Exception) -> FileResult:
    """A failed :class:`FileResult` that says what went wrong."""
    if isinstance(err, ImageReadError):
        # name the file only if it is not the input (e.g. an existing output)
        same = Path(err.path) == Path(path)
        return FileResult(str(path), FAILED, message=err.reason if same else str(err))
    if isinstance(err, (ImageError, OSError)):
        return FileResult(str(path), FAILED, message=_message(err))
    if isinstance(err, MemoryError):
        return FileResult(str(path), FAILED, message="not enough memory to segment this image")
    return FileResult(
        str(path),
        FAILED,
        message=f"unexpected {type(err).__name__}: {_message(err)}",
        unexpected=True,
        detail="".join(traceback.format_exception(err)),
    )


def _message(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror and err.filename:
        return f"{err.strerror}: {err.filename}"
    text = str(err).strip()
    return text or type(err).__name__


def is_own_output(path: Path, out_dir: Path) -> bool:
    """Whether ``path`` is an output this tool wrote into ``out_dir``."""
    name = path.name
    if not (name.endswith(LABELS_SUFFIX) or name.endswith(HEATMAP_SUFFIX)):
        return False
    try:
        return path.parent.resolve() == out_dir.resolve()
    except OSError:
        return False


def check_counts_file(out_dir: str | os.PathLike) -> CountsTable:
    """The existing ``counts.csv`` of an output folder (empty if there is none).

    Raises
    ------
    ValueError
        If a ``counts.csv`` is there but is not one this tool wrote, so it
        would be lost by merging into it.
    """
    path = Path(out_dir) / COUNTS_NAME
    if not path.exists():
        return CountsTable()
    try:
        return read_counts(path)
    except (ValueError, UnicodeDecodeError, OSError) as err:
        raise ValueError(
            f"{err}; move {path} away or choose another output folder "
            "(it would be replaced by the new counts)"
        ) from None


def segment_files_steps(
    paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    params: SegmentParams,
    model=None,
    overwrite: bool = False,
    workers: int = 1,
    scheduler: str | None = None,
) -> Steps[BatchResult]:
    """Segment image files into ``out_dir``, one at a time or in parallel.

    Parameters
    ----------
    paths : sequence of path-like
        The input files, e.g. from :func:`napari_milseg.io.list_images`.
        Outputs of this tool found among them in ``out_dir`` are ignored.
    out_dir : path-like
        Output folder; must exist and be writable (see
        :func:`napari_milseg.io.check_output_folder`).
    params : SegmentParams
        Thresholds and cell diameter.
    model : MilModel, path-like or None
        As for :func:`napari_milseg.segment`. With ``workers > 1`` or a
        ``scheduler`` it must be a path or None, since every worker loads it.
    overwrite : bool
        Segment every input and replace existing outputs.
    workers : int
        Local worker processes (1: segment in this process).
    scheduler : str or None
        Address of a dask.distributed scheduler to run on instead.

    Yields
    ------
    Progress
        ``step`` counts finished files out of ``total``; ``info["result"]``
        holds the :class:`FileResult` of the file just finished, and
        ``info["sub"]`` the tile or plane progress inside the current file
        (single process only).

    Returns
    -------
    BatchResult
        Results in input order and the ``counts.csv`` written.

    Raises
    ------
    ModelError
        If the model cannot be loaded.
    ValueError
        If ``out_dir`` holds a ``counts.csv`` this tool did not write, or
        ``workers`` is not a positive whole number.
    SchedulerError
        If the dask scheduler cannot be reached.
    ImportError
        If a scheduler is given and dask.distributed is not installed.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a whole number of at least 1, got {workers!r}")
    if scheduler is not None:
        _check_address(scheduler)
    out_dir = Path(out_dir)
    table = check_counts_file(out_dir)
    batch = BatchResult()
    inputs: list[Path] = []
    seen: set[Path] = set()
    for p in paths:
        p = Path(p)
        if is_own_output(p, out_dir):
            batch.ignored.append(p)
            continue
        try:
            real = p.resolve()
        except (OSError, RuntimeError):
            real = p
        if real in seen:
            batch.repeated.append(p)
            continue
        seen.add(real)
        inputs.append(p)

    # two inputs with one stem would write the same outputs: only the first may
    jobs: list[int] = []
    results: list[FileResult | None] = [None] * len(inputs)
    first_with_stem: dict[str, Path] = {}
    for i, p in enumerate(inputs):
        other = first_with_stem.setdefault(p.stem, p)
        if other is p:
            jobs.append(i)
        else:
            results[i] = FileResult(
                str(p),
                FAILED,
                message=f"its outputs would have the same names as those of {other}; "
                "rename one of them or segment them into different folders",
            )

    from .model import load_model

    if workers == 1 and scheduler is None:
        model = load_model(model)  # once, and a bad model stops the run here
        remote_model = None
    else:
        remote_model = _model_path(model)
        load_model(remote_model, device="cpu")  # fail early on a bad model

    total = len(inputs)
    done = 0
    for r in results:
        if r is not None:
            done += 1
            yield Progress(done, total, Path(r.path).name, {"result": r})

    if workers == 1 and scheduler is None:
        for i in jobs:
            path = inputs[i]
            steps = _file_steps(path, out_dir, params, model, overwrite)
            result = yield from _forward(steps, done, total, path.name)
            results[i] = result
            done += 1
            yield Progress(done, total, path.name, {"result": result})
    else:
        runner = _distributed if scheduler is not None else _local_processes
        target = scheduler if scheduler is not None else workers
        task = (str(out_dir), asdict(params), remote_model, overwrite)
        for i, result in runner(target, [(i, str(inputs[i])) for i in jobs], task):
            results[i] = result
            done += 1
            yield Progress(done, total, inputs[i].name, {"result": result})

    batch.results = [r for r in results if r is not None]
    before = dict(table.rows)
    for r in batch.results:
        if r.ok:
            name = Path(r.path).name
            for key in [k for k in table.rows if k == name or k.startswith(name + "[")]:
                del table.rows[key]
    # a fresh insertion order: old rows first, this run's rows in input order
    table.update(row for r in batch.results if r.ok for row in r.counts)
    counts_path = out_dir / COUNTS_NAME
    if table.rows and (table.rows != before or not counts_path.exists()):
        batch.counts_path = write_counts(counts_path, table, overwrite=True)
    elif counts_path.exists():
        batch.counts_path = counts_path
    return batch


def _file_steps(path, out_dir, params, model, overwrite) -> Steps[FileResult]:
    """:func:`segment_file` as a generator: progress as it comes, problems as results."""
    try:
        return (yield from segment_file_steps(path, out_dir, params, model, overwrite))
    except Exception as err:  # one odd file must not end a run over thousands
        return _failure(path, err)


def _forward(steps: Steps[FileResult], done: int, total: int, name: str) -> Steps[FileResult]:
    while True:
        try:
            report = next(steps)
        except StopIteration as stop:
            return stop.value
        yield Progress(done, total, name, {"sub": report})


def _model_path(model) -> str | None:
    if model is None:
        return None
    source = getattr(model, "source", None)
    if source is not None:
        if source == "bundled":
            return None
        if not Path(source).is_file():
            raise ValueError(
                "a model handed to workers must be saved to a file first; save_model() it"
            )
        return str(source)
    return str(Path(model).resolve())


# --- workers -------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def _worker_model(model_path: str | None):
    from .model import load_model

    return load_model(model_path, device="cpu")


def _worker_run(path: str, out_dir: str, params: dict, model_path: str | None, overwrite: bool):
    """Segment one file in a worker process (module level, so it pickles)."""
    try:
        model = _worker_model(model_path)
    except Exception as err:  # e.g. the model path is not visible on this worker
        return FileResult(path, FAILED, message=f"model could not be loaded here: {err}")
    return segment_file(path, out_dir, SegmentParams(**params), model, overwrite)


def _init_local_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _local_processes(workers: int, jobs: list[tuple[int, str]], task: tuple):
    """Run jobs in local processes, at most ``2 * workers`` in flight; yield (index, result)."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    threads = max(1, (os.cpu_count() or 1) // workers)
    # spawn, not fork: forking a process that has loaded torch can hang
    context = multiprocessing.get_context("spawn")
    pending = {}
    queue = iter(jobs)
    with ProcessPoolExecutor(workers, context, _init_local_worker, (threads,)) as pool:
        try:
            while True:
                while len(pending) < 2 * workers:
                    job = next(queue, None)
                    if job is None:
                        break
                    i, path = job
                    pending[pool.submit(_worker_run, path, *task)] = (i, path)
                if not pending:
                    return
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    i, path = pending.pop(future)
                    yield i, _future_result(future, path)
        finally:
            for future in pending:
                future.cancel()


#: What a scheduler address without dask.distributed installed is told.
NEEDS_DISTRIBUTED = (
    "running on a dask cluster needs dask.distributed: pip install 'napari-milseg[dask]'"
)


def _check_address(address: str) -> None:
    """Raise SchedulerError (or ImportError) unless ``address`` reads as a scheduler address.

    Checked before anything runs: a dask ``Client`` given a malformed address
    fails half-built and then hangs for a minute while it is cleaned up.
    """
    try:
        from distributed.comm.addressing import parse_address, parse_host_port
    except ImportError:
        raise ImportError(NEEDS_DISTRIBUTED) from None
    try:
        scheme, location = parse_address(address)
        if scheme in ("tcp", "tls"):
            parse_host_port(location)
    except (TypeError, ValueError) as err:
        raise SchedulerError(
            f"{address!r} is not a dask scheduler address (e.g. tcp://host:8786): {err}"
        ) from None


def _distributed(address: str, jobs: list[tuple[int, str]], task: tuple):
    """Run jobs on a dask.distributed cluster; yield (index, result) as they finish."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise ImportError(NEEDS_DISTRIBUTED) from None
    if not jobs:
        return
    try:
        client = Client(address, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as err:
        raise SchedulerError(f"cannot reach the dask scheduler at {address}: {err}") from err
    with client:
        # a bounded number of tasks in flight, so that thousands of files stream
        slots = max(2, 2 * sum(client.nthreads().values()))
        queue = iter(jobs)
        index = {}

        def submit(job):
            future = client.submit(_worker_run, job[1], *task, pure=False)
            index[future.key] = job
            return future

        first = [submit(job) for job in itertools.islice(queue, slots)]
        flow = as_completed(first, loop=client.loop)
        for future in flow:
            i, path = index.pop(future.key)
            yield i, _future_result(future, path)
            future.release()
            job = next(queue, None)
            if job is not None:
                flow.add(submit(job))


def _future_result(future, path: str) -> FileResult:
    try:
        return future.result()
    except Exception as err:  # a worker died, or the task could not be sent
        return FileResult(
            path,
            FAILED,
            message=f"worker failed: {type(err).__name__}: {_message(err)}",
            unexpected=True,
            detail="".join(traceback.format_exception(err)),
        )
