"""Keep triton from loading beside Mesa's LLVM, which crashes the process.

On Linux, napari drawn by Mesa's software renderer (llvmpipe: virtual
machines, remote desktops, CI) has Mesa's ``libLLVM`` loaded. Importing
torchvision then imports ``torch._dynamo``, which imports ``triton``; the
LLVM inside triton's extension and Mesa's clash and the process dies with a
segmentation fault, taking the user's unsaved work with it. napari-milseg
never uses triton (it runs plain eager PyTorch), so when Mesa's LLVM is
already loaded and triton is not, triton is marked unavailable before torch
looks for it; torch then runs without it.
"""

from __future__ import annotations

import sys


def llvm_loaded(maps_path: str = "/proc/self/maps") -> bool:
    """Whether a shared ``libLLVM`` is mapped into this process (Linux only)."""
    try:
        with open(maps_path, encoding="utf-8", errors="replace") as maps:
            return any("libLLVM" in line for line in maps)
    except OSError:
        return False


def keep_triton_away_from_mesa_llvm() -> bool:
    """Mark triton unavailable if Mesa's LLVM is loaded and triton is not.

    Returns
    -------
    bool
        True if triton was marked unavailable by this call.
    """
    if not sys.platform.startswith("linux") or "triton" in sys.modules:
        return False
    if not llvm_loaded():
        return False
    sys.modules["triton"] = None  # ``import triton`` now raises ImportError
    return True
