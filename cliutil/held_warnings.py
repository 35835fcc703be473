"""Warning lines held back while a command checks its inputs.

A command line prints ``warning: ...`` lines (Python warnings, and notes such as "points scaled") as it goes.  Those
that come up during the checks are held: a refused run (bad input, exit 2) prints its one ``error:`` line and none of
them; a run that goes on prints them when its work starts (:func:`work_starts`) or when it ends.  Outside
:func:`hold_warnings` (library use, tests) :func:`warning_line` prints at once.
"""
from __future__ import annotations

import sys
import warnings
from contextlib import contextmanager
from typing import Iterator

__all__ = ["HeldWarnings", "hold_warnings", "warning_line", "work_starts"]


class HeldWarnings:
    """``warning:`` lines of one command: held until :meth:`release`, printed at once afterwards."""

    def __init__(self) -> None:
        self.held: list[str] = []
        self.live = False

    def emit(self, text: str) -> None:
        line = f"warning: {' '.join(str(text).split())}"
        if self.live:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        elif line not in self.held:  # the same warning from two checks of one file: once
            self.held.append(line)

    def release(self) -> None:
        """Print what is held; later lines are printed at once."""
        if self.held:
            sys.stderr.write("".join(line + "\n" for line in self.held))
            sys.stderr.flush()
        self.held.clear()
        self.live = True

    def drop(self) -> None:
        """A refused run: forget what is held."""
        self.held.clear()


_current: list[HeldWarnings] = []


def warning_line(text: str) -> None:
    """One ``warning:`` line on stderr, held while the checks run (inside :func:`hold_warnings`)."""
    if _current:
        _current[-1].emit(text)
    else:
        sys.stderr.write(f"warning: {' '.join(str(text).split())}\n")


def work_starts() -> None:
    """The checks are over: print the held warning lines now (a no-op outside :func:`hold_warnings`)."""
    if _current:
        _current[-1].release()


@contextmanager
def hold_warnings() -> Iterator[HeldWarnings]:
    """Route ``warnings.warn`` (``warnings.showwarning``) and :func:`warning_line` to one held ``warning:`` line
    each for the duration of the block; the caller releases or drops them (see :func:`cliutil.run_cli`)."""
    held = HeldWarnings()
    old = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        held.emit(str(message))

    _current.append(held)
    warnings.showwarning = show
    try:
        yield held
    finally:
        warnings.showwarning = old
        _current.remove(held)
