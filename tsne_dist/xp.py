"""The array module: NumPy, or CuPy when a CUDA device is usable."""

from __future__ import annotations

import logging
from types import ModuleType

import numpy as np

logger = logging.getLogger("tsne_dist")


def cupy_or_none() -> ModuleType | None:
    """CuPy if it is installed and sees at least one CUDA device, else None."""
    try:
        import cupy
    except ImportError:
        return None
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
        # smoke test: cuFFT and a compiled elementwise kernel must work with this driver
        float(cupy.fft.rfft(cupy.ones(8)).real.sum() + (cupy.arange(4) * 2).sum())
    except Exception:  # noqa: BLE001 - any CUDA failure means "no usable GPU"
        return None
    return cupy


def get_array_module(array: object) -> ModuleType:
    """``cupy`` for CuPy arrays, else ``numpy``."""
    module = type(array).__module__
    if module.startswith("cupy"):
        import cupy

        return cupy
    return np

