"""Error type raised for invalid user input (configs, distributions, schedules), and strict number parsing.

ConfigError is a :class:`cliutil.BadInput`: every command line of the project turns it into one ``error: ...``
line on stderr and exit code 2 (``cliutil.run_cli``)."""
from __future__ import annotations

import math
from numbers import Real
from typing import Any

import numpy as np

from cliutil import BadInput


class ConfigError(BadInput):
    """Invalid input; the CLI prints its message as one line and exits 2."""


def numeric_array(value: Any, name: str, max_size: int = 10_000_000) -> np.ndarray:
    """A (nested) list of JSON numbers -> float64 array.  Strings ("0.1"), booleans, None and non-finite values are
    refused with a message naming ``name`` (``np.asarray(..., float)`` would silently parse "0.1")."""
    count = 0

    def walk(v: Any) -> None:
        nonlocal count
        if isinstance(v, (list, tuple)):
            for u in v:
                walk(u)
            return
        if isinstance(v, np.ndarray):
            walk(v.tolist())
            return
        if isinstance(v, bool) or not isinstance(v, Real):
            raise ConfigError(f"{name} must hold numbers only, got {v!r}")
        if not math.isfinite(float(v)):
            raise ConfigError(f"{name} must hold finite numbers, got {v}")
        count += 1
        if count > max_size:
            raise ConfigError(f"{name} has more than {max_size} numbers (the bound)")

    walk(value)
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a rectangular (not ragged) array of numbers") from None
