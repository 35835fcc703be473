"""The backbone registry: one module per family under ``sdimage/backbones/``, and no module of ``sdimage`` outside
that package names a family (no family id as a string, no family pipeline or model class), so every list of
families is read from the registry."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import sdimage
from sdimage.backbones import ARCHS, adapter_class, arch_of_folder, families

ROOT = Path(sdimage.__file__).parent


def _outside_modules() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if "backbones" not in p.relative_to(ROOT).parts)


def _class_names() -> set[str]:
    return {n for c in families() for n in (*c.pipeline_classes, *c.model_classes)}


def _names_a_family(path: Path) -> list[str]:
    """Where ``path`` names a family: a string constant that is a family id (alone or quoted inside a string) or
    mentions a family's diffusers class, and any identifier equal to such a class."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    classes, ids = _class_names(), set(ARCHS)
    quoted = re.compile(r"[\"'`]({})[\"'`]".format("|".join(map(re.escape, ids))))
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            v = node.value
            if v in ids or quoted.search(v):
                hits.append(f"{path.name}:{node.lineno}: family id in {v[:60]!r}")
            hits += [f"{path.name}:{node.lineno}: class {c} in a string" for c in classes if c in v]
        elif isinstance(node, ast.Name) and node.id in classes:
            hits.append(f"{path.name}:{node.lineno}: name {node.id}")
        elif isinstance(node, ast.Attribute) and node.attr in classes:
            hits.append(f"{path.name}:{node.lineno}: attribute {node.attr}")
        elif isinstance(node, ast.alias) and node.name in classes:
            hits.append(f"{path.name}:{node.lineno}: import {node.name}")
    return hits


def test_no_module_outside_backbones_names_a_family():
    mods = _outside_modules()
    assert len(mods) > 10 and all(p.suffix == ".py" for p in mods)
    hits = [h for p in mods for h in _names_a_family(p)]
    assert hits == []


def test_the_check_sees_a_family_named(tmp_path):
    """The scanner above is not blind: it flags each kind of mention it looks for."""
    cls = families()[-1]
    src = (f'X = "{cls.arch}"\nY = "--arch \'{cls.arch}\' only"\nfrom diffusers import {cls.pipeline_classes[0]}\n'
           f'Z = diffusers.{cls.model_classes[0]}\n')
    p = tmp_path / "m.py"
    p.write_text(src)
    assert len(_names_a_family(p)) >= 4


def test_each_family_is_one_module_registering_one_adapter():
    files = {p.stem for p in (ROOT / "backbones").glob("*.py") if not p.stem.startswith("_")}
    assert files == set(ARCHS)
    for arch in ARCHS:
        cls = adapter_class(arch)
        assert cls.__module__ == f"sdimage.backbones.{arch}" and cls.arch == arch
        assert cls.pipeline_classes and cls.model_classes and cls.subfolders and cls.label
        assert cls.default_guidance > 0


def test_cli_and_tiny_lists_come_from_the_registry():
    from sdimage.cli import build_parser
    from sdimage.tiny import ARCHS as TINY_ARCHS

    p = build_parser()
    sub = next(a for a in p._actions if a.dest == "command").choices["make-tiny-model"]
    arch = next(a for a in sub._actions if a.dest == "arch")
    assert tuple(arch.choices) == ARCHS == TINY_ARCHS and arch.default == ARCHS[0]


@pytest.mark.parametrize("arch", ARCHS)
def test_folder_of_every_pipeline_class_is_recognised(arch, tmp_path):
    import json

    for name in adapter_class(arch).pipeline_classes:
        (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": name}))
        assert arch_of_folder(tmp_path) == arch
