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
    could not be processed were reported; for ``train``: the model and its
    card are written).
1
    Nothing could be processed (no image found, or every image failed); for
    ``train``: the model could not be written to ``--out`` at the end (it is
    saved under another name, which the message gives).
2
    Bad usage or set-up: bad arguments, an unusable model file, an output
    folder that cannot be written, too few or no readable training images.
3
    An unexpected internal error (a bug; ``--debug`` shows the traceback).
130
    Interrupted (Ctrl-C); finished outputs are complete, run again to resume.
    ``train`` saves the last finished epoch's model to ``--out`` first (if
    an epoch finished).

Messages go to stderr, one line each, without tracebacks unless ``--debug``.
"""

from __future__ import annotations

import argparse
import math
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


def _path(text: str) -> str:
    """A file or folder argument: refuses an empty one (``--out ""`` from a script)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path names no file or folder")
    return text


def _positive_float(text: str) -> float:
    value = _fraction(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = _fraction(text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of at least 0, got {text}")
    return value


def _diameter(text: str) -> float | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return _positive_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"must be a positive number of pixels or 'auto', got {text!r}"
        ) from None


def _turn(text: str) -> float | str:
    if text.strip().lower() in ("auto", "keep"):
        return text.strip().lower()
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(
            f"must be an angle in degrees, 'auto' or 'keep', got {text!r}"
        )
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
    p.add_argument("--out", "-o", required=True, type=_path, metavar="DIR",
                   help="output folder")
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
        type=_diameter,
        default=None,
        metavar="PX|auto",
        help="expected cell diameter in pixels, or 'auto' to estimate it from the input "
        "images (default: the model's training diameter)",
    )
    p.add_argument(
        "--closer-look",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also look at every image enlarged twice, for small cells such as platelets "
        "(on by default; --no-closer-look takes about half the time and finds fewer platelets)",
    )
    p.add_argument(
        "--split-joined",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="cut cells that hold two round bodies of red cells pressed together into them "
        "(off by default; adds about 15 ms per 640x480 image)",
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

    auto = args.diameter == "auto"
    try:
        params = SegmentParams(
            inner=args.inner,
            outer=args.outer,
            diameter=None if auto else args.diameter,
            closer_look=args.closer_look,
            split_joined=args.split_joined,
        )
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

    if auto:
        from dataclasses import replace

        params = replace(params, diameter=_estimate_diameter(paths))
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
    if batch.repeated:
        summary += f", {len(batch.repeated)} given twice (done once)"
    if batch.counts_path is not None:
        summary += f"; counts in {batch.counts_path}"
    _say(summary)
    return EXIT_OK if ok else EXIT_NOTHING_DONE


def _estimate_diameter(paths: list[Path]) -> float:
    """``--diameter auto``: one cell diameter for the whole batch, with a progress bar."""
    from tqdm import tqdm

    from .diameter import FEW_IMAGES, MAX_IMAGES, estimate_diameter_steps, evenly_spaced
    from .progress import run

    picked = evenly_spaced(paths, MAX_IMAGES)
    per_file = max(1, MAX_IMAGES // len(picked))
    bar = tqdm(total=len(picked), unit="image", file=sys.stderr, disable=None,
               dynamic_ncols=True, desc="cell diameter")
    try:
        read: list[Path] = []
        planes = _planes_of(picked, per_file, read, bar)
        diameter = run(estimate_diameter_steps(planes, skip=True))
    except ValueError as err:
        raise CliError(f"--diameter auto: {err}", EXIT_NOTHING_DONE) from err
    finally:
        bar.close()
    used = len(read)
    note = ""
    if used < FEW_IMAGES:
        note = (f"; from fewer than {FEW_IMAGES} images it can be off by half or more, "
                "give --diameter PX if you know it")
    _say(f"estimated cell diameter: {diameter:.0f} px, from {used} image file(s){note}")
    return diameter


def _planes_of(paths: list[Path], per_file: int, read: list[Path], bar):
    """The planes of each readable file, read one file at a time (unreadable ones skipped).

    The files read are appended to ``read``.
    """
    import warnings

    import numpy as np

    from .diameter import plane_indices
    from .io import ImageReadError, load_image
    from .preprocess import ImageError

    for path in paths:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                image = load_image(path)
            indices = plane_indices(image.data.shape, bool(image.rgb), per_file)
        except (ImageReadError, ImageError):
            continue  # the batch reports it
        read.append(path)
        bar.update(1)
        for index in indices:
            yield np.asarray(image.data[index])


# --- train ---------------------------------------------------------------


def _device(text: str) -> str:
    import re

    if text in ("auto", "cpu", "cuda", "mps") or re.fullmatch(r"cuda:\d+", text):
        return text
    raise argparse.ArgumentTypeError(f"must be auto, cpu, cuda (or cuda:N) or mps, got {text!r}")


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def add_train_command(subparsers, common: argparse.ArgumentParser) -> None:
    """Register ``milseg train``."""
    from .params import MIN_POSITIVES, TrainParams

    defaults = TrainParams()
    p = subparsers.add_parser(
        "train",
        parents=[common],
        help="train or fine-tune a model from images labelled only as with/without cells",
        description=(
            "Fine-tune the bundled model (or --init PATH, or --from-scratch) on positive "
            "images (with cells) and, optionally, negative images (background only; when "
            "none are given they are synthesized from the positives). PATH may be a folder "
            "(its image files, not recursively), an image file, or a .txt list of image "
            "paths (one per line, relative to the list, # for comments). Files that are not "
            f"readable images are skipped and counted. At least {MIN_POSITIVES} positive "
            "images are needed. Writes the model to --out and its card (data, counts, "
            "command, date, time, machine) to the same name with .json. Ctrl-C saves the "
            "last finished epoch's model (its card says 'interrupted_after_epoch')."
        ),
    )
    p.add_argument(
        "--positive", "-p", nargs="+", required=True, action="extend", metavar="PATH",
        help="folders, image files or .txt lists of images that contain cells",
    )
    p.add_argument(
        "--negative", "-n", nargs="+", default=[], action="extend", metavar="PATH",
        help="folders, image files or .txt lists of background-only images "
        "(default: synthesized from the positives)",
    )
    start = p.add_mutually_exclusive_group()
    start.add_argument(
        "--init", default=None, metavar="PATH",
        help="model file to start from (default: the bundled model)",
    )
    start.add_argument(
        "--from-scratch", action="store_true", help="start from a new, untrained network"
    )
    p.add_argument("--out", "-o", required=True, type=_path, metavar="PATH",
                   help="model file to write (e.g. mylab.pt); the card goes to mylab.json")
    p.add_argument("--epochs", type=_whole, default=defaults.epochs, metavar="N",
                   help=f"passes over the positive images (default {defaults.epochs}); 0 "
                   "trains nothing, only sets the cell diameter and colour turn")
    p.add_argument(
        "--warmup-epochs", type=_whole, default=None, metavar="N",
        help="leading epochs of MIL alone before self-training (default: none with "
        "--mil-weight 0, as when fine-tuning; else half the epochs from scratch, 2 when "
        "fine-tuning)",
    )
    p.add_argument(
        "--mil-weight", type=_non_negative_float, default=None, metavar="W",
        help="weight of the MIL losses in the self-training epochs (default: 1 from "
        "scratch or with --warmup-epochs above 0, else 0 when fine-tuning: training on "
        "the model's own cells alone)",
    )
    p.add_argument("--lr", type=_positive_float, default=None, metavar="F",
                   help="learning rate (default 3e-4 when fine-tuning, 1e-3 from scratch)")
    p.add_argument("--batch-size", type=_positive_int, default=defaults.batch_size,
                   metavar="N", help=f"positive crops per step (default {defaults.batch_size})")
    p.add_argument(
        "--crops-per-image", type=_positive_int, default=defaults.crops_per_image, metavar="N",
        help=f"crops drawn from each positive image per epoch (default "
        f"{defaults.crops_per_image})",
    )
    p.add_argument(
        "--diameter", type=_positive_float, default=None, metavar="PX",
        help="cell diameter in the training images, in pixels (default: estimated from them)",
    )
    p.add_argument(
        "--colour-turn", type=_turn, default=defaults.colour_turn, metavar="DEG",
        help="turn the images' colours about their background colour by DEG degrees, in "
        "training and whenever the new model is used; 'auto' (default) chooses the turn "
        "under which the starting model finds the cells best (0 unless the stain's hue "
        "hides them from it; always 0 with --from-scratch); 'keep' keeps the starting "
        "model's turn; 0 turns nothing",
    )
    p.add_argument("--seed", type=_whole, default=defaults.seed, metavar="N",
                   help=f"random seed (default {defaults.seed})")
    p.add_argument("--device", type=_device, default=defaults.device, metavar="DEVICE",
                   help="auto (GPU if any), cpu or cuda (default auto)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing model file and card at --out")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    """Carry out ``milseg train``; returns the exit code."""
    import shlex
    import time

    from .card import DestinationError, DestinationExistsError, check_destination

    started = time.time()
    command = shlex.join([PROG, *(args.argv if args.argv is not None else sys.argv[1:])])
    from .params import TrainParams

    try:
        params = TrainParams(
            epochs=args.epochs, warmup_epochs=args.warmup_epochs, mil_weight=args.mil_weight,
            learning_rate=args.lr,
            batch_size=args.batch_size, crops_per_image=args.crops_per_image,
            diameter=args.diameter, seed=args.seed, device=args.device,
            colour_turn=args.colour_turn,
        )
    except ValueError as err:
        raise CliError(str(err)) from err
    try:
        out = check_destination(args.out, args.overwrite)
    except DestinationExistsError as err:
        raise CliError(f"{err} (choose another --out, or pass --overwrite)") from err
    except DestinationError as err:
        raise CliError(str(err)) from err

    try:
        init = _train_init(args, params.device)
        positives, negatives = _train_images(args)
        # _train_loop catches Ctrl-C itself once its loop runs; one that comes while
        # it is still setting up lands here, before anything could be saved
        model, done = _train_loop(positives, negatives, params, init)
    except KeyboardInterrupt:
        _say("interrupted before training started; nothing was saved")
        return EXIT_INTERRUPTED
    return _save_training(model, out, positives, negatives, command, started, args, done)


def _train_init(args: argparse.Namespace, device: str):
    """The starting model, loaded before any image is read so a bad file fails fast."""
    from .model import ModelError, bundled_model_path, choose_device, load_model, mps_available

    try:
        where = choose_device(device)
        import torch

        if where.type == "cuda" and not torch.cuda.is_available():
            raise CliError(f"--device {device}: no CUDA GPU is available here")
        if where.type == "mps" and not mps_available():
            raise CliError(f"--device {device}: Apple MPS is not available here")
    except (RuntimeError, ValueError) as err:
        raise CliError(f"--device {device}: {err}") from err
    if args.from_scratch:
        return "scratch"
    try:
        return load_model(args.init, device)
    except ModelError as err:
        if args.init is None and not bundled_model_path().exists():
            raise CliError(
                "the bundled model is not installed; start --from-scratch or --init PATH"
            ) from err
        raise CliError(str(err)) from err


def _train_images(args: argparse.Namespace):
    from tqdm import tqdm

    from .dataset import DatasetError, read_images_steps, require_positives
    from .progress import run

    sets = []
    for what, inputs in (("positive", args.positive), ("negative", args.negative)):
        if not inputs:
            sets.append(None)
            continue
        bar = tqdm(desc=f"reading {what} images", unit="file", file=sys.stderr, disable=None,
                   dynamic_ncols=True, leave=False)

        def show(report, bar=bar):
            bar.total = report.total
            bar.update(report.step - bar.n)

        try:
            images = run(read_images_steps(inputs, what), show)
        except DatasetError as err:
            raise CliError(str(err)) from err
        finally:
            bar.close()
        _say(f"{what} images: {images.summary()}")
        sets.append(images)
    positives, negatives = sets
    try:
        require_positives(positives)
    except DatasetError as err:
        raise CliError(str(err)) from err
    return positives, negatives


def _train_loop(positives, negatives, params, init):
    """Run training with a progress bar; returns (model, completed) where model may be
    the last finished epoch's (completed False) or None after an early Ctrl-C."""
    from tqdm import tqdm

    from .dataset import left_out_text
    from .model import ModelError
    from .preprocess import ImageError
    from .progress import run
    from .train import train_steps

    steps = train_steps(
        list(positives.images), list(negatives.images) if negatives else None, params, init
    )
    bar = tqdm(desc="training", unit="step", file=sys.stderr, disable=None, dynamic_ncols=True)
    last = None

    def show(report) -> None:
        nonlocal last
        info = report.info
        if report.total > 1:
            bar.total = report.total
            bar.update(report.step - bar.n)
        if "colour_turn" in info:
            _say(report.message)
        if "left_out" in info:
            _say(left_out_text(report.message, info["left_out"], positives, negatives))
        if info.get("epoch_done"):
            last = info["model"]
            _say(f"{report.message}: mean loss {info['loss']:.4f}")
        elif "loss" in info:
            bar.set_postfix_str(
                f"epoch {info['epoch']}/{params.epochs} {info['stage']} "
                f"loss {info['loss']:.3f}", refresh=False,
            )
        else:
            bar.set_postfix_str(report.message, refresh=True)

    try:
        return run(steps, show), True
    except KeyboardInterrupt:
        steps.close()
        return last, False
    except (ImageError, ModelError, ValueError) as err:
        raise CliError(str(err)) from err
    except MemoryError as err:
        raise CliError(
            "not enough memory to train; use fewer or smaller images, or a smaller "
            "--batch-size"
        ) from err
    finally:
        bar.close()


def _save_training(model, out, positives, negatives, command, started, args, done) -> int:
    from .card import save_trained, training_card

    if model is None:
        _say("interrupted before the first epoch finished; nothing was saved")
        return EXIT_INTERRUPTED
    epochs = model.card.get("epochs")
    card = training_card(
        model, positives, negatives, command=command, started=started,
        interrupted_after_epoch=None if done else epochs,
    )
    try:
        path, meta = save_trained(model, out, card, overwrite=args.overwrite)
    except (OSError, ValueError) as err:
        rescue = _rescue(model, out, card)
        raise CliError(
            f"could not write {out}: {err}; "
            + (f"the model was saved to {rescue} instead" if rescue else "the model is lost"),
            EXIT_NOTHING_DONE,
        ) from err
    if done:
        _say(f"model written to {path} (card: {meta}) after {card.get('wall_seconds')} s")
        return EXIT_OK
    _say(f"interrupted: the model after epoch {epochs} was written to {path} (card: {meta})")
    return EXIT_INTERRUPTED


def _rescue(model, out: Path, card: dict) -> Path | None:
    """Save a finished model somewhere else when its destination failed at the end."""
    import tempfile
    import time

    from .card import save_trained

    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"{Path(out).stem}-rescued-{stamp}{Path(out).suffix or '.pt'}"
    for folder in (Path(out).parent, Path(tempfile.gettempdir())):
        try:
            return save_trained(model, folder / name, card)[0]
        except (OSError, ValueError):
            continue
    return None


# --- the parser ----------------------------------------------------------

#: Functions that register one subcommand each: ``f(subparsers, common)``.
COMMANDS: tuple[Callable[..., None], ...] = (add_segment_command, add_train_command)


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
    args.argv = argv
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
