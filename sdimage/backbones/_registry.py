"""The registry of backbone families: each family module registers its adapter class with :func:`register` when it
is imported (:func:`load_families` imports every public module of this package once).

The one piece of module-level mutable state in :mod:`sdimage`: ``_FAMILIES`` is filled by those imports and never
changed afterwards (an accepted exception to the no-global-state rule, documented here).
"""
from __future__ import annotations

import importlib
import json
import pkgutil
from pathlib import Path

from ..errors import SdImageError
from ._base import Backbone

__all__ = ["register", "families", "adapter_class", "archs", "supported", "detect_arch", "arch_of_folder", "backbone",
           "load_families"]

_FAMILIES: dict[str, type[Backbone]] = {}  # arch → adapter class, filled by the family modules' imports


def register(cls: type[Backbone]) -> type[Backbone]:
    """Class decorator of a family module: add the adapter to the registry (its ``arch`` must be new)."""
    if not cls.arch or not cls.pipeline_classes:
        raise TypeError(f"{cls.__name__}: a family declares arch and pipeline_classes")
    if cls.arch in _FAMILIES and _FAMILIES[cls.arch] is not cls:
        raise TypeError(f"family {cls.arch!r} registered twice ({_FAMILIES[cls.arch].__name__}, {cls.__name__})")
    _FAMILIES[cls.arch] = cls
    return cls


def load_families() -> None:
    """Import every module of :mod:`sdimage.backbones` whose name does not start with ``_`` (each registers its
    family): adding a family is adding a module."""
    package = __name__.rsplit(".", 1)[0]
    path = Path(__file__).parent
    for info in sorted(pkgutil.iter_modules([str(path)]), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")


def families() -> list[type[Backbone]]:
    """The registered adapter classes in their declared order."""
    return sorted(_FAMILIES.values(), key=lambda c: (c.order, c.arch))


def archs() -> tuple[str, ...]:
    return tuple(c.arch for c in families())


def adapter_class(arch: str) -> type[Backbone]:
    if arch not in _FAMILIES:
        raise SdImageError(f"unknown model family {arch!r}; choose one of {', '.join(archs())}")
    return _FAMILIES[arch]


def supported() -> str:
    """The supported families in words (error messages)."""
    labels = [c.label for c in families()]
    text = labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]
    return f"{text} (text-to-image, img2img and inpaint pipelines)"


def _by_pipeline_class(name: str) -> str | None:
    for c in families():
        if name in c.pipeline_classes:
            return c.arch
    return None


def arch_of_folder(path: str | Path) -> str:
    """The family of a diffusers folder from its ``model_index.json`` (``_class_name``)."""
    p = Path(path) / "model_index.json"
    try:
        name = json.loads(p.read_text(encoding="utf-8")).get("_class_name", "")
    except (OSError, ValueError) as err:
        raise SdImageError(f"cannot read {str(p)!r}: {err}") from None
    arch = _by_pipeline_class(name)
    if arch is None:
        raise SdImageError(f"model {str(path)!r} is a {name or 'unknown'} pipeline; supported families: {supported()}")
    return arch


def detect_arch(pipe) -> str:
    """The family of a loaded pipeline (or an adapter): by its class, else by its components (a pipeline built from
    parts works too)."""
    if isinstance(pipe, Backbone):
        return pipe.arch
    name = type(pipe).__name__
    arch = _by_pipeline_class(name)
    if arch is not None:
        return arch
    for c in families():
        if c.matches(pipe):
            return c.arch
    raise SdImageError(f"unsupported pipeline {name}; supported families: {supported()}")


def backbone(pipe) -> Backbone:
    """The adapter of a loaded pipeline; an adapter is returned as it is (so callers may pass either)."""
    if isinstance(pipe, Backbone):
        return pipe
    return _FAMILIES[detect_arch(pipe)](pipe)
