"""Large images and many images: tiled-inference throughput, peak memory, worker scaling.

Usage::

    python benchmarks/scale.py [--sizes 2000 5000 10000] [--model PATH | --untrained 100]
        [--smear FILE] [--workers 1 2 --images DIR --n 8] [--out result.json|result.md]

For every size a fresh Python process builds a square RGB mosaic of copies
of a real smear, runs the tiled heatmap (timed: megapixels per second at
the image's own resolution) and the watershed, and reports its peak
resident memory (``getrusage`` max RSS) after each step, next to the size
of the arrays that must exist whatever the method (the image, the float32
heatmap and the int32 labels). Bounded tiling shows as a peak that grows
with those arrays only.

An untrained network (``--untrained DIAMETER``) runs as fast as a trained
one at the same cell diameter, but its map has no cell cores, so the
watershed would return at once; with it the watershed runs on a cell-shaped
map (see ``speed.proxy_heatmap``) tiled to the same size.

``--workers 1 2`` times ``milseg segment`` over ``--n`` images of
``--images`` with that many local worker processes (wall time, including
the start of Python and torch in each process).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_IMAGES = HERE.parent.parent / "shared" / "data" / "cbc-train" / "images"
DEFAULT_SMEAR = DEFAULT_IMAGES / "BloodImage_00000.jpg"
MB = 1024 * 1024


def max_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # kilobytes on Linux, bytes on macOS
    return peak / (MB if sys.platform == "darwin" else 1024)


def mosaic(smear: np.ndarray, size: int) -> np.ndarray:
    """A ``size`` x ``size`` image of mirrored copies of ``smear``."""
    block = np.concatenate([smear, smear[:, ::-1]], axis=1)
    block = np.concatenate([block, block[::-1]], axis=0)
    reps = (-(-size // block.shape[0]), -(-size // block.shape[1]))
    tiled = np.tile(block, (*reps, 1) if block.ndim == 3 else reps)
    return np.ascontiguousarray(tiled[:size, :size])


def child(args) -> dict:
    """One size, in this (fresh) process."""
    import torch

    import napari_milseg
    from napari_milseg.heatmap import heatmap_steps
    from napari_milseg.io import read_image
    from napari_milseg.model import load_model, new_model
    from napari_milseg.progress import run

    if args.threads:
        torch.set_num_threads(args.threads)
    rss_start = max_rss_mb()
    model = (
        new_model(args.untrained, device="cpu", seed=0)
        if args.untrained
        else load_model(args.model, device="cpu")
    )
    smear = read_image(args.smear)
    image = mosaic(smear, args.child)
    rss_setup = max_rss_mb()

    tiles = []
    start = time.perf_counter()
    heatmap = run(heatmap_steps(image, model), tiles.append)
    heatmap_s = time.perf_counter() - start
    rss_heatmap = max_rss_mb()

    if args.untrained:
        sys.path.insert(0, str(HERE))
        from speed import proxy_heatmap

        del heatmap
        heatmap = mosaic(proxy_heatmap(smear, model.diameter), args.child)
    start = time.perf_counter()
    labels = napari_milseg.label_cells(heatmap, diameter=model.diameter)
    label_s = time.perf_counter() - start
    rss_peak = max_rss_mb()

    pixels = args.child * args.child
    arrays = image.nbytes + heatmap.nbytes + labels.nbytes
    return {
        "size": args.child,
        "megapixels": round(pixels / 1e6, 2),
        "tiles": tiles[-1].total if tiles else 0,
        "heatmap_s": round(heatmap_s, 2),
        "megapixels_per_s": round(pixels / 1e6 / heatmap_s, 3),
        "label_cells_s": round(label_s, 2),
        "cells": int(labels.max()),
        "rss_start_mb": round(rss_start),
        "rss_after_setup_mb": round(rss_setup),
        "rss_after_heatmap_mb": round(rss_heatmap),
        "rss_peak_mb": round(rss_peak),
        "arrays_mb": round(arrays / MB),
        "peak_above_arrays_mb": round(rss_peak - arrays / MB),
        "torch_threads": torch.get_num_threads(),
    }


def run_size(size: int, args) -> dict:
    command = [sys.executable, __file__, "--child", str(size), "--smear", str(args.smear)]
    command += ["--untrained", str(args.untrained)] if args.untrained else []
    command += ["--model", str(args.model)] if args.model else []
    command += ["--threads", str(args.threads)] if args.threads else []
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["(no message)"]
        return {"size": size, "error": f"exit {done.returncode}: {tail[0]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_workers(args, model_path: str) -> list[dict]:
    from napari_milseg.io import list_images

    images = [str(p) for p in list_images([args.images])][: args.n]
    rows = []
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as out:
            command = [sys.executable, "-m", "napari_milseg", "segment", *images, "--out", out,
                       "--model", model_path, "--workers", str(workers)]
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True)
            wall = time.perf_counter() - start
        row = {"workers": workers, "images": len(images), "wall_s": round(wall, 2),
               "images_per_s": round(len(images) / wall, 3)}
        if done.returncode != 0:
            row["error"] = done.stderr.strip().splitlines()[-1:]
        rows.append(row)
        print(f"  {workers} worker(s): {row}", file=sys.stderr)
    return rows


def markdown(result: dict) -> str:
    info = result["machine"]
    lines = [
        "# napari-milseg at scale",
        "",
        f"Model: {result['model']} (cell diameter {result['diameter']:g} px). CPU: {info['cpu']}, "
        f"{info['usable_cores']} usable cores, load average at start "
        f"{', '.join(f'{x:.2f}' for x in info['load_average'] or [])}.",
        "",
        "| size | tiles | heatmap s | MP/s | label_cells s | peak RSS MiB | arrays MiB "
        "| peak - arrays MiB |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in result["sizes"]:
        if "error" in row:
            lines.append(f"| {row['size']} | {row['error']} |  |  |  |  |  |  |")
            continue
        lines.append(
            f"| {row['size']} | {row['tiles']} | {row['heatmap_s']} | {row['megapixels_per_s']} "
            f"| {row['label_cells_s']} | {row['rss_peak_mb']} | {row['arrays_mb']} "
            f"| {row['peak_above_arrays_mb']} |"
        )
    if result.get("workers"):
        lines += ["", "| workers | images | wall s | images/s |", "| ---: | ---: | ---: | ---: |"]
        for row in result["workers"]:
            lines.append(
                f"| {row['workers']} | {row['images']} | {row['wall_s']} | {row['images_per_s']} |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[2000, 5000, 10000])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--model", default=None, help="weights file (default: bundled)")
    group.add_argument("--untrained", type=float, metavar="DIAMETER", default=None)
    parser.add_argument("--smear", type=Path, default=DEFAULT_SMEAR, help="image to tile")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--workers", type=int, nargs="*", default=[], help="e.g. 1 2")
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--n", type=int, default=8, help="images for the worker timing")
    parser.add_argument("--out", type=Path, default=None, help="write .json or .md")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child is not None:
        print(json.dumps(child(args)))
        return 0
    if args.out is not None and args.out.suffix not in (".json", ".md"):
        parser.error("--out must end in .json or .md")

    sys.path.insert(0, str(HERE))
    from speed import machine_info

    from napari_milseg.model import load_model, new_model, save_model

    model = (
        new_model(args.untrained, device="cpu", seed=0)
        if args.untrained
        else load_model(args.model, device="cpu")
    )
    result = {
        "model": "untrained network (seed 0)" if args.untrained else model.name,
        "diameter": model.diameter,
        "smear": str(args.smear),
        "machine": machine_info(),
        "sizes": [],
        "workers": [],
    }
    for size in args.sizes:
        row = run_size(size, args)
        print(f"  {size} px: {row}", file=sys.stderr)
        result["sizes"].append(row)
    if args.workers:
        with tempfile.TemporaryDirectory() as tmp:
            path = args.model
            if path is None:
                path = str(save_model(model, Path(tmp) / "model.pt")) if args.untrained else ""
            if not path:
                from napari_milseg.model import bundled_model_path

                path = str(bundled_model_path())
            result["workers"] = run_workers(args, path)
    text = markdown(result)
    print(text)
    if args.out is not None:
        from speed import write_report

        write_report(args.out, result, text, args.overwrite)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
