"""The task families of the shapes drag bed by name: how each is built and where its tasks come from.

``single`` (one object, :mod:`.data`), ``pair`` (two objects, :mod:`.pairs`), ``textured`` (one object over a
structured background, :mod:`.textured`) and ``shaded`` (one shaded or outlined object, :mod:`.shaded`).
"""
from __future__ import annotations

from .data import build_shapes
from .pairs import PairSet, build_pairs
from .scenes import VariantSet, build_variant_set, make_variant_tasks
from .tasks import FAMILIES, make_pair_tasks, make_tasks

__all__ = ["FAMILIES", "VARIANT_FAMILIES", "build_family", "family_config", "family_tasks"]

VARIANT_FAMILIES: tuple[str, ...] = ("textured", "shaded")


def family_config(name: str, cfg):
    """The data configuration of family ``name`` in a :class:`~toy.shapes.experiment.ShapesDragConfig`."""
    return {"single": cfg.shapes, "pair": cfg.pairs, "textured": cfg.textured, "shaded": cfg.shaded}[name]


def build_family(name: str, data_cfg):
    """The data set (ShapeSet, PairSet or VariantSet) of family ``name`` with data configuration ``data_cfg``."""
    if name == "single":
        return build_shapes(data_cfg)
    if name == "pair":
        return build_pairs(data_cfg)
    if name in VARIANT_FAMILIES:
        return build_variant_set(data_cfg)
    raise ValueError(f"unknown family {name!r}; choose from {FAMILIES}")


def family_tasks(data, distance: int, handle: str, n_groups: int, seed: int, near: int = 3) -> list:
    """The tasks of a family's data set: one-object, two-object or variant tasks."""
    if isinstance(data, PairSet):
        return make_pair_tasks(data, n_groups, distance, seed, handle, near)
    if isinstance(data, VariantSet):
        return make_variant_tasks(data, n_groups, distance, seed, handle)
    return make_tasks(data, n_groups, distance, seed, handle)
