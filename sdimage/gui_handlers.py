"""The browser editor's handlers, for scripts and tests: its inputs (:mod:`sdimage.gui_inputs`) and its runs
(:mod:`sdimage.gui_run`) under one name.  No Gradio import."""
from __future__ import annotations

from .gui_inputs import *  # noqa: F403
from .gui_inputs import __all__ as _inputs
from .gui_run import *  # noqa: F403
from .gui_run import __all__ as _runs

__all__ = [*_inputs, *_runs]
