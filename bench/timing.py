"""Wall-clock timing shared by the benchmarks: one warm-up call, then ``repeats`` timed calls."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def times_ms(call: Callable[[], object], repeats: int) -> list[float]:
    """Milliseconds of each of ``repeats`` calls of ``call`` after one untimed warm-up call."""
    call()
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        out.append(1000 * (time.perf_counter() - started))
    return out


def median_ms(call: Callable[[], object], repeats: int) -> float:
    """The median of :func:`times_ms`."""
    return float(np.median(times_ms(call, repeats)))
