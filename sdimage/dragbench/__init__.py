"""DragBench (being split into formats, runner and evaluation)."""
from __future__ import annotations

from .runner import *  # noqa: F401,F403
from .runner import __all__, _result_ok  # noqa: F401
