"""The browser editor's bounds on what one request may ask for: the upload's size in bytes and pixels (checked from
the file's header, before anything is decoded) and the numbers the CLI bounds too (one declaration, used by both).

A request beyond a bound gets one line (``SdImageError``), never unbounded work.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .errors import SdImageError
from .settings import MAX_MASK_DRAWS  # noqa: F401  (declared with the settings)

__all__ = ["MAX_UPLOAD_PIXELS", "MAX_UPLOAD_MB", "MAX_MASK_DRAWS", "check_upload_file", "guard_uploads"]

MAX_UPLOAD_PIXELS = 25_000_000
"""Most pixels an uploaded image may have (5000×5000), read from its header before decoding; larger ones are refused
(--max-side then scales the accepted ones down)."""
MAX_UPLOAD_MB = 50
"""Default most megabytes of one uploaded file (``gui --max-upload-mb``; Gradio refuses larger uploads)."""


def check_upload_file(path: str | Path, what: str = "image", max_pixels: int = MAX_UPLOAD_PIXELS) -> None:
    """``path`` is an image (its header names a format Pillow reads) of at most ``max_pixels`` pixels; reads the
    header only.  One-line :class:`SdImageError` otherwise."""
    from PIL import Image, UnidentifiedImageError

    name = Path(path).name
    try:
        with Image.open(path) as im:
            w, h = im.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise SdImageError(f"the {what} is not an image ({name!r}: upload a PNG, JPEG or WebP file)") from None
    except Image.DecompressionBombError:  # pragma: no cover - Pillow's own limit is far above ours
        raise SdImageError(f"the {what} {name!r} has too many pixels (most {max_pixels:,})") from None
    if w * h > max_pixels:
        raise SdImageError(f"the {what} is {w}x{h} ({w * h / 1e6:.1f} megapixels): more than the "
                           f"{max_pixels / 1e6:g}-megapixel upload limit; scale it down first")


def _paths(payload: Any):
    """The file paths in a Gradio payload (FileData, an image editor's background / layers / composite)."""
    if payload is None:
        return
    path = getattr(payload, "path", None)
    if isinstance(path, str):
        yield path
        return
    for key in ("background", "composite", "layers"):
        value = getattr(payload, key, None)
        for v in value if isinstance(value, list) else [value]:
            yield from _paths(v)


def guard_uploads(component, what: str, fail: Callable[[BaseException], BaseException]):
    """Check every file a Gradio image component receives (:func:`check_upload_file`) before Gradio decodes it:
    a non-image or an oversized image is one line (``fail(err)``, a ``gr.Error``) on every endpoint, not Gradio's
    generic "upstream app has raised an exception"."""
    inner = component.preprocess

    def preprocess(payload):
        try:
            for p in _paths(payload):
                check_upload_file(p, what)
            return inner(payload)
        except SdImageError as err:
            raise fail(err) from None
        except (OSError, ValueError, SyntaxError) as err:  # anything else Pillow cannot read
            raise fail(SdImageError(f"the {what} is not an image ({type(err).__name__})")) from None

    component.preprocess = preprocess
    return component
