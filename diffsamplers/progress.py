"""A progress display a person can read, in a terminal and in a log.

On a terminal (the stream's ``isatty()``, or the default stream inside a Jupyter kernel) a :class:`Progress` is one
tqdm bar.  On anything else (a log file, a pipe, a CI job) it writes nothing per step: only the few plain lines its
owner asks for (:meth:`Progress.line`, and one closing line ``"<desc>: <n> steps, <t> s"`` unless turned off), each
ending in a newline, never a carriage return.  The bar object exists in both cases (disabled off a terminal), so a
front end that follows tqdm (gradio's ``track_tqdm``) still sees the steps.

The samplers' ``progress`` argument is one of:

- ``False`` / ``None``: nothing;
- ``True``: a display of their own for their own steps (one bar, or one closing line off a terminal);
- a shared :class:`Progress`: they only advance it; whoever made it (e.g. :func:`diffsamplers.recipes.drag`, one bar
  for every pass of every operation) owns its total, its description, its lines and its closing.

No module-level state: the stream is looked up when a display is made (``sys.stderr`` unless ``file`` is given).
"""
from __future__ import annotations

import sys
import time
from typing import Iterator, TextIO, Union

__all__ = ["Progress", "ProgressArg", "is_interactive", "progress_steps"]


def _in_notebook() -> bool:
    """Inside a Jupyter kernel (where tqdm.auto draws a widget): the test tqdm.autonotebook makes."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # noqa: BLE001 - no shell means no notebook
        return False
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def is_interactive(file: TextIO | None = None) -> bool:
    """Whether progress written to ``file`` (None: ``sys.stderr`` now) is shown as a live bar: the stream is a
    terminal, or it is the default stream of a Jupyter kernel."""
    stream = sys.stderr if file is None else file
    try:
        if stream is not None and stream.isatty():
            return True
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        pass
    return file is None and _in_notebook()


class Progress:
    """One progress display of ``total`` steps (None: unknown, or set later with :meth:`grow`).

    A tqdm bar on a terminal (``leave``: keep it when closed); elsewhere no output per step, only :meth:`line` and,
    when closed, one closing line (``closing_line=False``: none).  Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, total: int | None = None, desc: str = "", *, file: TextIO | None = None, unit: str = "step",
                 leave: bool = False, closing_line: bool = True):
        import tqdm.auto  # looked up now, so a front end that patches tqdm.auto.tqdm is followed

        self.total = total
        self.desc = desc
        self.unit = unit
        self.n = 0
        self.file = file
        self.interactive = is_interactive(file)
        self.closing_line = closing_line
        self.start = time.perf_counter()
        self.closed = False
        self.bar = tqdm.auto.tqdm(total=total, desc=desc, file=file, unit=unit, leave=leave,
                                  disable=not self.interactive)

    @property
    def elapsed(self) -> float:
        """Seconds since the display was made."""
        return time.perf_counter() - self.start

    def update(self, n: int = 1) -> None:
        """``n`` more steps done."""
        self.n += n
        self.bar.update(n)

    def grow(self, n: int) -> None:
        """``n`` more steps expected (the total grows by ``n``)."""
        self.total = (self.total or 0) + int(n)
        self.bar.total = self.total
        self.bar.refresh()

    def set_description(self, desc: str) -> None:
        """What the bar says before the count (e.g. ``"drag op 2/3"``)."""
        self.desc = desc
        self.bar.set_description(desc)

    def line(self, text: str) -> None:
        """One plain line for a log: written (with a newline) only when the stream is not a terminal, where the bar
        already shows it."""
        if self.interactive:
            return
        stream = sys.stderr if self.file is None else self.file
        stream.write(text.replace("\r", " ") + "\n")
        stream.flush()

    def steps(self, n: int) -> Iterator[int]:
        """``range(n)``, one step of the display advanced after each item's work."""
        for i in range(n):
            yield i
            self.update(1)

    def close(self) -> None:
        """Close the bar (off a terminal: write the closing line).  Closing twice does nothing."""
        if self.closed:
            return
        self.closed = True
        self.bar.close()
        if self.closing_line:
            total = "" if self.total is None or self.total == self.n else f"/{self.total}"
            self.line(f"{self.desc or 'progress'}: {self.n}{total} {self.unit}s, {self.elapsed:.1f} s")

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:  # an error (or a loop left early) ends the display without the closing line
            self.closing_line = False
        self.close()


ProgressArg = Union[bool, None, Progress]
"""A ``progress`` argument: False / None, True (a display of one's own) or a shared :class:`Progress`."""


def _own_steps(n: int, desc: str) -> Iterator[int]:
    with Progress(n, desc) as p:
        yield from p.steps(n)


def progress_steps(n: int, progress: ProgressArg, desc: str) -> Iterator[int] | range:
    """``range(n)`` with progress: none (``progress`` False / None), a display of its own named ``desc``
    (``True``) or steps of a shared :class:`Progress` (which keeps its own description)."""
    if isinstance(progress, Progress):
        return progress.steps(n)
    if not progress:
        return range(n)
    return _own_steps(n, desc)
