"""The one exception type of ``sdimage``: a user-facing problem, printed by the CLI as a single line."""
from __future__ import annotations

from cliutil import BadInput

__all__ = ["SdImageError"]


class SdImageError(BadInput):
    """Bad input or an unusable model: the message is one line meant for the user (no traceback).

    A :class:`cliutil.BadInput` (hence a ``ValueError``): every CLI of the project prints it as one ``error:`` line
    and exits with status 2."""


class Stopped(SdImageError):
    """The user stopped the run (the editor's Stop button, or the browser tab went away): raised at the next model
    evaluation, so a run stops within one sampler step."""
