"""DragBench: the two public data layouts, the resumable runner and the evaluation.

- :mod:`.formats`: :class:`DragSample`, ``FORMATS``, :func:`detect_format`, reading (with a restricted unpickler),
  validating and writing sample folders, :func:`find_samples`, :func:`read_dragbench`;
- :mod:`.runner`: result names (:func:`sample_key` / :func:`key_to_id`), :func:`run_settings` and ``manifest.json``,
  :func:`check_resume`, :func:`run_dragbench`;
- :mod:`.evaluation`: :func:`evaluate_dragbench` (Image Fidelity and Mean Distance).

Every public name is re-exported here, so ``from sdimage.dragbench import X`` works for all of them.
"""
from __future__ import annotations

from .evaluation import evaluate_dragbench
from .formats import (
    FORMATS,
    DragSample,
    detect_format,
    find_samples,
    read_dragbench,
    read_sample,
    validate_sample,
    write_sample,
)
from .runner import (
    MANIFEST,
    _result_ok,  # noqa: F401 - private, kept importable from here (tests check a result with it)
    check_resume,
    key_to_id,
    run_dragbench,
    run_settings,
    sample_key,
)

__all__ = [
    "FORMATS",
    "DragSample",
    "detect_format",
    "read_sample",
    "write_sample",
    "find_samples",
    "read_dragbench",
    "validate_sample",
    "sample_key",
    "key_to_id",
    "run_settings",
    "check_resume",
    "MANIFEST",
    "run_dragbench",
    "evaluate_dragbench",
]
