"""Input checks that name the flag and the bound in one line; all run before a model loads or work starts."""
from __future__ import annotations

import math
import os
import tempfile
from numbers import Integral, Real
from pathlib import Path
from typing import Iterable

__all__ = ["BadInput", "one_line", "check_number", "check_int", "check_choice", "check_writable_dir",
           "check_new_file", "MAX_SEED"]

MAX_SEED = 2 ** 63 - 1


class BadInput(ValueError):
    """Bad user input; a CLI prints its message as one ``error:`` line and exits 2."""


def one_line(msg: object) -> str:
    """Collapse a message to one line (whitespace runs become one space)."""
    return " ".join(str(msg).split())


def _bad(error: type[Exception], msg: str) -> Exception:
    return error(msg)


def _fmt(v) -> str:
    """A bound as written: integers exactly (2**63 - 1, not 9.22337e+18), other numbers with ``:g``."""
    if v == MAX_SEED:
        return "2**63 - 1"
    return str(int(v)) if isinstance(v, Integral) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e15) \
        else f"{v:g}"


def check_number(value, flag: str, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
                 hi_open: bool = False, error: type[Exception] = BadInput) -> None:
    """A finite real number within [lo, hi] (open ends with ``lo_open`` / ``hi_open``); ``None`` passes."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, Real):
        raise _bad(error, f"{flag} must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise _bad(error, f"{flag} must be a finite number, got {value}")
    low = lo is not None and (value <= lo if lo_open else value < lo)
    high = hi is not None and (value >= hi if hi_open else value > hi)
    if (low or high) and lo is not None and hi is not None:
        raise _bad(error, f"{flag} must be in {'(' if lo_open else '['}{_fmt(lo)}, {_fmt(hi)}{')' if hi_open else ']'}, "
                          f"got {value}")
    if low:
        raise _bad(error, f"{flag} must be {'>' if lo_open else '>='} {_fmt(lo)}, got {value}")
    if high:
        raise _bad(error, f"{flag} must be {'<' if hi_open else '<='} {_fmt(hi)}, got {value}")


def check_int(value, flag: str, lo: int | None = None, hi: int | None = None,
              error: type[Exception] = BadInput) -> None:
    """An integer (not a bool, not a float) within [lo, hi]; ``None`` passes."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise _bad(error, f"{flag} must be an integer, got {value!r}")
    check_number(int(value), flag, lo, hi, error=error)


def check_choice(value, flag: str, choices: Iterable, error: type[Exception] = BadInput) -> None:
    choices = list(choices)
    if value not in choices:
        raise _bad(error, f"{flag} must be one of {', '.join(map(str, choices))}; got {value!r}")


def check_writable_dir(d: str | os.PathLike, flag: str, error: type[Exception] = BadInput) -> Path:
    """``d`` is a writable folder or can be created (its nearest existing parent is a writable folder, probed by
    writing a file there and removing it)."""
    d = Path(d)
    if d.exists() and not d.is_dir():
        raise _bad(error, f"{flag}: {str(d)!r} is a file, not a folder")
    q = d
    while not q.exists():
        if q.parent == q:
            break
        q = q.parent
    if not q.is_dir():
        raise _bad(error, f"{flag}: {str(q)!r} is a file, so {str(d)!r} cannot be a folder")
    if not os.access(q, os.W_OK | os.X_OK):
        raise _bad(error, f"{flag}: {str(q)!r} is not writable")
    reason = _write_probe(q)
    if reason is not None:  # a read-only file system, or a folder root cannot write either (/sys, /proc)
        raise _bad(error, f"{flag}: {str(q)!r} is not writable ({reason})")
    return d


def _write_probe(folder: Path) -> str | None:
    """Create and remove one empty file in ``folder``: None when that works, else the reason.  ``os.access`` alone
    says yes to root on a chmod-555 folder and to anyone on a read-only mount it does not check, so the folder is
    tried for real, before any work (the probe file is gone again at once)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".write-probe-", suffix=".tmp", dir=str(folder))
    except OSError as err:
        return err.strerror or type(err).__name__
    os.close(fd)
    try:
        os.unlink(tmp)
    except OSError:
        pass
    return None


def check_new_file(path: str | os.PathLike, flag: str, suffixes: Iterable[str] | None = None,
                   error: type[Exception] = BadInput) -> Path:
    """``path`` can be written as a file: right suffix, not a folder, its folder writable or creatable."""
    p = Path(path)
    if suffixes is not None:
        suffixes = [s.lower() for s in suffixes]
        if p.suffix.lower() not in suffixes:
            raise _bad(error, f"{flag} must end in {' or '.join(suffixes)}, got {str(path)!r}")
    if p.is_dir():
        raise _bad(error, f"{flag} {str(path)!r} is a folder")
    if p.exists() and not os.access(p, os.W_OK) and not os.access(p.parent, os.W_OK):
        raise _bad(error, f"{flag} {str(path)!r} is not writable")
    check_writable_dir(p.parent, flag, error=error)
    return p
