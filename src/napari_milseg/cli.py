"""The ``milseg`` command line (also ``python -m napari_milseg``).

A thin argparse front end over the core: every subcommand is one function
that registers its parser and points it at a function taking the parsed
arguments and returning an exit code. Adding a subcommand means writing
``add_<name>_command(subparsers, common)`` and listing it in
:data:`COMMANDS`.

Exit codes
----------
0
    Done (for ``segment``: at least one image has its outputs; files that
    could not be processed were reported).
1
    Nothing could be processed (no image found, or every image failed).
2
    Bad usage or set-up: bad arguments, an unusable model file, an output
    folder that cannot be written.
3
    An unexpected internal error (a bug; ``--debug`` shows the traceback).
130
    Interrupted (Ctrl-C); finished outputs are complete, run again to resume.

Messages go to stderr, one line each, without tracebacks unless ``--debug``.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from . import __version__

EXIT_OK = 0
EXIT_NOTHING_DONE = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130

PROG = "milseg"


class CliError(Exception):
    """A problem to report in one line, with the exit code to end with."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def _say(message: str) -> None:
    """One line to stderr that does not break a progress bar."""
    try:
        from tqdm import tqdm

        tqdm.write(f"{PROG}: {message}", file=sys.stderr)
    except ImportError:  # pragma: no cover - tqdm is a dependency
        print(f"{PROG}: {message}", file=sys.stderr)


# --- argument types ------------------------------------------------------


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    return value


def _positive_float(text: str) -> float:
    value = _fraction(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


# --- segment -------------------------------------------------------------


def add_segment_command(subparsers, common: argparse.ArgumentParser) -> None:
    """Register ``milseg segment``."""
    from .params import DEFAULT_INNER, DEFAULT_OUTER

    p = subparsers.add_parser(
        "segment",
        parents=[common],
        help="find, separate and count the cells in image files",
        description=(
            "Segment image files (JPEG, PNG, TIFF, BMP; folders are listed, not "
            "recursively) and write OUT/<stem>_labels.tif, OUT/<stem>_heatmap.tif "
            "(float32) and OUT/counts.csv (columns image,cells). Stacks (multi-page "
            "TIFF) are segmented plane by plane, with one counts row per plane named "
            "'file[i]'. Images whose outputs exist are skipped (resume) and their "
            "counts read back from the labels file, unless --overwrite."
        ),
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--inner",
        type=_fraction,
        default=DEFAULT_INNER,
        metavar="F",
        help=f"heatmap level of cell cores (markers), 0..1 (default {DEFAULT_INNER})",
    )
    p.add_argument(
        "--outer",
        type=_fraction,
        default=DEFAULT_OUTER,
        metavar="F",
        help=f"heatmap level of cell extent, below --inner (default {DEFAULT_OUTER})",
    )
    p.add_argument(
        "--diameter",
        type=_positive_float,
        default=None,
        metavar="PX",
        help="expected cell diameter in pixels (default: the model's training diameter)",
    )
    p.add_argument(
        "--model", default=None, metavar="PATH", help="weights file (default: the bundled model)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="segment every image again and replace existing outputs",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        metavar="N",
        help="local worker processes (default 1)",
    )
    where.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run on a dask.distributed scheduler, e.g. tcp://host:8786 (inputs and "
        "--out must be visible to the workers at the same paths)",
    )
    p.set_defaults(func=run_segment)


def run_segment(args: argparse.Namespace) -> int:
    """Carry out ``milseg segment``; returns the exit code."""
    from .batch import FAILED, RESUMED, SchedulerError, check_counts_file, segment_files_steps
    from .io import ImageReadError, OutputFolderError, check_output_folder, list_images
    from .params import SegmentParams

    try:
        params = SegmentParams(inner=args.inner, outer=args.outer, diameter=args.diameter)
    except ValueError as err:
        raise CliError(str(err)) from err
    try:
        out = check_output_folder(args.out)
    except OutputFolderError as err:
        raise CliError(str(err)) from err
    try:
        check_counts_file(out)
    except ValueError as err:
        raise CliError(str(err)) from err

    skipped: list[Path] = []
    try:
        paths = list(list_images(args.inputs, skipped))
    except ImageReadError as err:
        raise CliError(str(err)) from err
    if skipped:
        example = skipped[0].name
        _say(f"skipped {len(skipped)} non-image file(s) in the input folders (e.g. {example})")
    if not paths:
        raise CliError(f"no image files found in {' '.join(args.inputs)}", EXIT_NOTHING_DONE)

    from tqdm import tqdm

    from .model import ModelError

    steps = segment_files_steps(
        paths,
        out,
        params,
        model=args.model,
        overwrite=args.overwrite,
        workers=args.workers,
        scheduler=args.scheduler,
    )
    bar = tqdm(total=len(paths), unit="image", file=sys.stderr, disable=None, dynamic_ncols=True)
    try:
        while True:
            try:
                report = next(steps)
            except StopIteration as stop:
                batch = stop.value
                break
            if "sub" in report.info:
                sub = report.info["sub"]
                if sub.total > 1:
                    bar.set_postfix_str(f"{report.message} {sub.step}/{sub.total}", refresh=True)
                continue
            result = report.info["result"]
            bar.update(report.step - bar.n)
            bar.set_postfix_str("")
            for note in result.notes:
                _say(f"{result.path}: note: {note}")
            if result.status == FAILED:
                _say(f"{result.path}: skipped: {result.message}")
                if result.unexpected:
                    if args.debug:
                        _say(result.detail.rstrip())
                    else:
                        _say("(run with --debug to see the traceback of this unexpected error)")
    except ModelError as err:
        raise CliError(str(err)) from err
    except (ImportError, SchedulerError) as err:
        raise CliError(str(err)) from err
    finally:
        bar.close()

    ok = [r for r in batch.results if r.ok]
    failed = batch.by_status(FAILED)
    resumed = batch.by_status(RESUMED)
    summary = f"{len(ok) - len(resumed)} image(s) segmented"
    if resumed:
        summary += f", {len(resumed)} already done (outputs kept; --overwrite redoes them)"
    if failed:
        summary += f", {len(failed)} failed"
    if batch.ignored:
        summary += f", {len(batch.ignored)} of milseg's own outputs ignored"
    if batch.counts_path is not None:
        summary += f"; counts in {batch.counts_path}"
    _say(summary)
    return EXIT_OK if ok else EXIT_NOTHING_DONE


# --- the parser ----------------------------------------------------------

#: Functions that register one subcommand each: ``f(subparsers, common)``.
COMMANDS: tuple[Callable[..., None], ...] = (add_segment_command,)


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", help="show tracebacks of errors (for bug reports)"
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    """The ``milseg`` argument parser with all subcommands."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Find, separate and count cells in microscope smears (napari-milseg).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(
        title="commands", dest="command", metavar="COMMAND", required=True
    )
    common = _common_options()
    for add in COMMANDS:
        add(subparsers, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``milseg`` with ``argv`` (default: the process arguments).

    Returns
    -------
    int
        The exit code (see the module docstring).
    """
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    try:
        return int(args.func(args))
    except CliError as err:
        if debug:
            traceback.print_exc()
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return err.code
    except KeyboardInterrupt:
        print(
            f"\n{PROG}: interrupted; finished outputs are complete, "
            "run the same command again to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except Exception as err:  # the last line of defence: one line, not a traceback
        if debug:
            traceback.print_exc()
        print(
            f"{PROG}: error: unexpected {type(err).__name__}: {err}"
            + ("" if debug else " (run with --debug for the traceback)"),
            file=sys.stderr,
        )
        return EXIT_INTERNAL
