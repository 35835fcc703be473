"""The CLI shell shared by every ``python -m ...`` entry point: one-line argparse errors and exit codes."""
from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

from .checks import BadInput, one_line
from .held_warnings import HeldWarnings

__all__ = ["OneLineParser", "run_cli", "quiet_third_party", "quiet_third_party_logs", "EXIT_OK", "EXIT_BAD_INPUT",
           "EXIT_FAILED"]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class OneLineParser(argparse.ArgumentParser):
    """argparse with a one-line error (``error: ... (see `PROG --help`)``) and exit code 2."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"error: {one_line(message)} (see `{self.prog} --help`)\n")


def run_cli(fn: Callable[[], int | None], bad_input: Sequence[type[BaseException]] = (BadInput,),
            internal: str = "internal error", held: HeldWarnings | None = None) -> int:
    """Run ``fn``; bad input → one ``error:`` line and 2; any other exception → one line and 1 (no traceback);
    Ctrl-C → 130.  ``held`` (:func:`cliutil.held_warnings.hold_warnings`): the warning lines held during the checks
    are dropped on bad input (the error is the only line) and printed otherwise."""
    try:
        code = int(fn() or 0)
        _release(held)
        return code
    except tuple(bad_input) as exc:
        if held is not None:
            held.drop()
        sys.stderr.write(f"error: {one_line(exc) or type(exc).__name__}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        _release(held)
        sys.stderr.write("error: interrupted\n")
        return 130
    except MemoryError:
        _release(held)
        sys.stderr.write(f"error: {internal}: out of memory (try a smaller size)\n")
        return EXIT_FAILED
    except Exception as exc:  # never a traceback on the command line
        _release(held)
        sys.stderr.write(f"error: {internal}: {type(exc).__name__}: {one_line(exc)}\n")
        return EXIT_FAILED


def _release(held: HeldWarnings | None) -> None:
    if held is not None:
        held.release()


def quiet_third_party() -> None:
    """Called by the entry points (never the library): quiet transformers / diffusers / hub import chatter."""
    for k, v in (("TRANSFORMERS_VERBOSITY", "error"), ("DIFFUSERS_VERBOSITY", "error"),
                 ("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1"),
                 ("TF_CPP_MIN_LOG_LEVEL", "3")):
        os.environ.setdefault(k, v)


_LIB_VERBOSITY = (("transformers", "TRANSFORMERS_VERBOSITY"), ("diffusers", "DIFFUSERS_VERBOSITY"))


def _level(name: str | None, default: int) -> int:
    import logging

    return {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR,
            "critical": logging.CRITICAL}.get(str(name).lower(), default)


@contextmanager
def quiet_third_party_logs() -> Iterator[None]:
    """For the duration of a command (entry points only, never the library): transformers' and diffusers' loggers at
    ``error`` — their import-time fallback notices ("requires torchvision ...") and advice that does not apply
    (float16 on the CPU "will fail") are not one-line errors of ours.  A ``TRANSFORMERS_VERBOSITY`` /
    ``DIFFUSERS_VERBOSITY`` set by the user wins.  Logger levels and the environment are restored on exit, so an
    in-process caller (tests, a GUI) keeps its own settings."""
    import logging

    saved_env = {var: os.environ.get(var) for _, var in _LIB_VERBOSITY}
    saved_level = {lib: logging.getLogger(lib).level for lib, _ in _LIB_VERBOSITY}
    for lib, var in _LIB_VERBOSITY:
        os.environ.setdefault(var, "error")  # read by the library when it is first imported inside the command
        logging.getLogger(lib).setLevel(_level(os.environ[var], logging.ERROR))
    try:
        yield
    finally:
        for lib, var in _LIB_VERBOSITY:
            if saved_env[var] is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = saved_env[var]
            # exactly as before (NOTSET if the library configured itself inside: it then follows the root logger,
            # WARNING by default, which is the library's own default)
            logging.getLogger(lib).setLevel(saved_level[lib])
