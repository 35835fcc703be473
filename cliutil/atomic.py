"""Atomic output: write to a temporary name beside the target, give it the mode a plain new file gets under the
umask (``mkstemp`` would leave 0600), then rename; a failure leaves the old file (or nothing) and no temp file."""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "write_bytes_atomic", "write_text_atomic", "write_json_atomic"]


def _umask() -> int:
    try:  # Linux: read it without touching the process state
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    m = os.umask(0o022)
    os.umask(m)
    return m


@contextmanager
def atomic_path(path: str | os.PathLike, mode: int = 0o666) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path`` with ``mode & ~umask``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=str(p.parent))
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, mode & ~_umask())
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj, indent: int | None = 2, default=None) -> Path:
    """JSON with ``allow_nan=False``: a NaN in a result is an error, never a bare ``NaN`` token in the file."""
    text = json.dumps(obj, indent=indent, allow_nan=False, default=default) + "\n"
    return write_text_atomic(path, text)
