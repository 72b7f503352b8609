"""Chooses the native module this CPU runs best.

A portable wheel (``python/build_wheel.py``) holds the module built for three x86-64 levels:
``_flock_v4`` (AVX-512), ``_flock_v3`` (AVX2 + FMA) and ``_flock`` (the baseline); a local build
(``pip install ./python``) holds ``_flock`` only, built for the machine it was built on. The
environment variable ``FLOCK_SIMD`` (``v4``, ``v3`` or ``base``) forces a level.
"""

from __future__ import annotations

import importlib
import os

# /proc/cpuinfo flags each level needs (x86-64-v3: AVX2, BMI1/2, F16C, FMA, LZCNT, MOVBE;
# x86-64-v4 adds AVX-512 F, BW, CD, DQ, VL).
_V3 = {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}
_V4 = _V3 | {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}


def _cpu_flags() -> set:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _levels() -> list:
    forced = os.environ.get("FLOCK_SIMD")
    if forced:
        if forced not in ("v4", "v3", "base"):
            raise ImportError(f"FLOCK_SIMD={forced!r} is not one of v4, v3, base")
        return [forced]
    flags = _cpu_flags()
    return [level for level, need in (("v4", _V4), ("v3", _V3)) if need <= flags] + ["base"]


def _load():
    levels = _levels()
    for level in levels:
        name = "flock._flock" if level == "base" else f"flock._flock_{level}"
        try:
            return importlib.import_module(name)
        except ImportError:
            if os.environ.get("FLOCK_SIMD"):
                raise
    raise ImportError(f"no native flock module for the levels {levels}")


native = _load()
