"""The one exception type of ``sdimage``: a user-facing problem, printed by the CLI as a single line."""
from __future__ import annotations

__all__ = ["SdImageError"]


class SdImageError(Exception):
    """Bad input or an unusable model: the message is one line meant for the user (no traceback)."""
