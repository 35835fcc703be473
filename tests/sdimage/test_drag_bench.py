"""DragBench IO (both layouts), validation, the runner and the evaluation with stand-in metrics."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from sdimage.dragbench import (
    DragSample,
    evaluate_dragbench,
    find_samples,
    read_dragbench,
    read_sample,
    run_dragbench,
    sample_key,
    write_sample,
)
from sdimage.errors import SdImageError
from sdimage.metrics import AlexLPIPS, image_fidelity, match_points, mean_distance_sample


def make_sample(seed=0, size=64, n=2, prompt="a photo of a cat"):
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    mask = np.zeros((size, size), bool)
    mask[8:56, 4:60] = True
    src = [(10 + 5 * k, 20 + 3 * k) for k in range(n)]
    tgt = [(30 + 4 * k, 22 + 2 * k) for k in range(n)]
    return DragSample(img, prompt, src, tgt, mask)


@pytest.mark.parametrize("fmt", ["sde-drag", "dragdiffusion"])
def test_roundtrip(tmp_path, fmt):
    s = make_sample(1, n=3)
    d = write_sample(s, tmp_path / "cat" / "s1", fmt)
    files = sorted(p.name for p in d.iterdir())
    if fmt == "sde-drag":
        assert files == ["mask.png", "origin_image.png", "prompt.json"]
    else:
        assert files == ["meta_data.pkl", "original_image.png", "user_drag.png"]
        meta = pickle.loads((d / "meta_data.pkl").read_bytes())
        assert meta["points"][:2] == [list(s.sources[0]), list(s.targets[0])]  # handle, target alternate
        assert meta["mask"].dtype == np.uint8 and set(np.unique(meta["mask"])) == {0, 1}
    r = read_sample(d)
    assert r.format == fmt and r.prompt == s.prompt
    assert r.sources == s.sources and r.targets == s.targets
    assert np.array_equal(np.asarray(r.image), np.asarray(s.image))
    assert np.array_equal(r.mask, s.mask)
    # and into the other layout
    other = "dragdiffusion" if fmt == "sde-drag" else "sde-drag"
    r2 = read_sample(write_sample(r, tmp_path / "other", other))
    assert r2.sources == s.sources and np.array_equal(r2.mask, s.mask)
    assert [sid for sid, _ in find_samples(tmp_path)] == ["cat/s1", "other"]


def _corrupt(tmp_path, fmt, what):
    s = make_sample(2)
    d = write_sample(s, tmp_path / what, fmt)
    if what == "json":
        (d / "prompt.json").write_text("{not json")
    elif what == "keys":
        (d / "prompt.json").write_text(json.dumps({"prompt": "x", "source": [[1, 2]]}))
    elif what == "outside":
        (d / "prompt.json").write_text(json.dumps({"prompt": "x", "source": [[1, 2]], "target": [[64, 2]]}))
    elif what == "same":
        (d / "prompt.json").write_text(json.dumps({"prompt": "x", "source": [[1, 2]], "target": [[1, 2]]}))
    elif what == "count":
        (d / "prompt.json").write_text(json.dumps({"prompt": "x", "source": [[1, 2], [3, 4]], "target": [[5, 6]]}))
    elif what == "mask":
        Image.new("L", (32, 32), 255).save(d / "mask.png")
    elif what == "image":
        (d / ("origin_image.png" if fmt == "sde-drag" else "original_image.png")).write_bytes(b"not a png")
    elif what == "odd":
        (d / "meta_data.pkl").write_bytes(pickle.dumps({"prompt": "x", "points": [[1, 2], [3, 4], [5, 6]]}))
    elif what == "evil":
        class Evil:
            def __reduce__(self):
                import os

                return (os.getcwd, ())

        (d / "meta_data.pkl").write_bytes(pickle.dumps({"prompt": Evil(), "points": []}))
    return d


@pytest.mark.parametrize(
    "fmt, what, msg",
    [("sde-drag", "json", "not valid JSON"), ("sde-drag", "keys", "needs keys"), ("sde-drag", "outside", "outside"),
     ("sde-drag", "same", "same point"), ("sde-drag", "count", "matching"), ("sde-drag", "mask", "mask is 32x32"),
     ("sde-drag", "image", "cannot read image"), ("dragdiffusion", "odd", "alternate"),
     ("dragdiffusion", "evil", "refusing"), ("dragdiffusion", "image", "cannot read image")],
)
def test_malformed_samples(tmp_path, fmt, what, msg):
    d = _corrupt(tmp_path, fmt, what)
    with pytest.raises(SdImageError, match=msg):
        read_sample(d)


def test_not_a_benchmark(tmp_path):
    with pytest.raises(SdImageError, match="no DragBench samples"):
        find_samples(tmp_path)
    with pytest.raises(SdImageError, match="not a folder"):
        find_samples(tmp_path / "missing")


# ------------------------------------------------------------------------------------------ metrics


def test_match_points_and_distance_with_one_hot_features():
    h = w = 8

    def onehot(img, prompt):  # position code: each pixel has its own feature vector
        return torch.eye(h * w).reshape(1, h * w, h, w)

    img = Image.fromarray(np.zeros((h, w, 3), np.uint8))
    f = onehot(None, "")
    assert match_points(f, f, [(1, 2), (7, 0)]) == [(1, 2), (7, 0)]
    shifted = f.roll(shifts=(1, 2), dims=(2, 3))  # content moved by +2 in x, +1 in y
    assert match_points(f, shifted, [(1, 2)]) == [(3, 3)]
    d = mean_distance_sample(img, img, [(1, 1)], [(4, 5)], "", onehot)
    assert d == [5.0]


def test_alex_lpips_architecture_and_fidelity():
    net = AlexLPIPS().eval()
    x = torch.rand(1, 3, 224, 224) * 2 - 1
    with torch.no_grad():
        assert float(net(x, x)) == 0.0
    assert image_fidelity(Image.new("RGB", (64, 64)), Image.new("RGB", (64, 64)), lambda a, b: 0.25) == 0.75
    seen = {}

    def spy(a, b):
        seen["shape"] = tuple(a.shape)
        return float((a - b).abs().mean())

    image_fidelity(Image.new("RGB", (64, 48)), Image.new("RGB", (512, 512), "white"), spy)
    assert seen["shape"] == (1, 3, 224, 224)


# ------------------------------------------------------------------------------------------ runner


def test_runner_resumes_and_evaluates(tiny_pipe, tmp_path):
    from sdimage.drag import DragConfig

    root = tmp_path / "bench"
    write_sample(make_sample(3, n=1), root / "animals" / "a", "dragdiffusion")
    write_sample(make_sample(4, n=1, prompt="a dog"), root / "b", "sde-drag")
    assert len(read_dragbench(root)) == 2
    cfg = DragConfig(steps=4, t0=0.5, lora_steps=0, step_size=20.0, guidance_max=1.0)
    out = tmp_path / "out"
    summary = run_dragbench(tiny_pipe, root, out, sampler="ode", config=cfg, progress=False)
    assert summary["ran"] == 2 and summary["skipped"] == 0
    meta = json.loads((out / f"{sample_key('animals/a')}.json").read_text())
    assert meta["sample_id"] == "animals/a" and meta["seed"] == 1234 and meta["num_drag_ops"] == 1
    first = np.asarray(Image.open(out / "b.png"))
    again = run_dragbench(tiny_pipe, root, out, sampler="ode", config=cfg, progress=False)
    assert again["ran"] == 0 and again["skipped"] == 2
    # each sample has its own seed: dragging b alone gives the same picture
    (out / "b.png").unlink()
    run_dragbench(tiny_pipe, root, out, sampler="ode", config=cfg, progress=False)
    assert np.array_equal(np.asarray(Image.open(out / "b.png")), first)

    def feats(img, prompt):
        return img.mean(1, keepdim=True).repeat(1, 3, 1, 1) + torch.linspace(0, 1, img.shape[-1])

    m = evaluate_dragbench(root, out, lpips=lambda a, b: float((a - b).abs().mean()), features=feats, progress=False)
    assert m["evaluated"] == 2 and m["missing"] == []
    assert -1.0 <= m["image_fidelity"] <= 1.0 and m["mean_distance"] >= 0
    assert json.loads((out / "metrics.json").read_text())["per_sample"]["b"]["distances"]


def test_split_across_processes_matches_single_process(tiny_pipe, tmp_path, monkeypatch):
    """Two (simulated) accelerate ranks share the samples; together they write what one process writes."""
    import contextlib

    import accelerate

    from sdimage.drag import DragConfig

    root = tmp_path / "bench"
    for k in range(3):
        write_sample(make_sample(10 + k, n=1), root / f"s{k}", "sde-drag")
    cfg = DragConfig(steps=2, t0=0.5, lora_steps=0, step_size=20.0, guidance_max=1.0)
    single = tmp_path / "single"
    run_dragbench(tiny_pipe, root, single, sampler="sde", config=cfg, progress=False)

    class FakeState:
        def __init__(self, rank):
            self.num_processes, self.process_index, self.is_main_process = 2, rank, rank == 0

        def wait_for_everyone(self):
            pass

        @contextlib.contextmanager
        def split_between_processes(self, items):
            k = -(-len(items) // 2)
            yield items[self.process_index * k:(self.process_index + 1) * k]

    ran = {}
    for rank in (0, 1):  # each rank in its own folder: both list the same pending samples, as after the barrier
        monkeypatch.setattr(accelerate, "PartialState", lambda rank=rank: FakeState(rank))
        ran[rank] = run_dragbench(tiny_pipe, root, tmp_path / f"rank{rank}", sampler="sde", config=cfg,
                                  progress=False)["ran"]
    assert ran == {0: 2, 1: 1}
    for k in range(3):
        got = next(p for p in (tmp_path / "rank0" / f"s{k}.png", tmp_path / "rank1" / f"s{k}.png") if p.exists())
        assert np.array_equal(np.asarray(Image.open(single / f"s{k}.png")), np.asarray(Image.open(got)))


# ------------------------------------------------------------------------------------------ result names, resume


def _ids(alphabet="a_%/", longest=6):
    """Every sample id (non-empty path segments) over ``alphabet`` up to ``longest`` characters."""
    import itertools

    for k in range(1, longest + 1):
        for t in itertools.product(alphabet, repeat=k):
            s = "".join(t)
            if all(s.split("/")):
                yield s


def test_result_names_are_injective_exhaustively():
    from sdimage.dragbench import key_to_id

    ids = list(_ids())
    keys = [sample_key(s) for s in ids]
    assert len(set(keys)) == len(ids) > 2000
    for s, k in zip(ids, keys):
        assert "/" not in k and key_to_id(k) == s
    assert sample_key("animals/JH_2023-09-14") == "animals__JH_2023-09-14"  # the usual ids stay readable
    assert sample_key("a__b") == "a%5F%5Fb" != sample_key("a/b") == "a__b"
    assert sample_key("a_/b") != sample_key("a/_b")
    assert sample_key("metrics") == "%6Detrics" and sample_key("Manifest") == "%4Danifest"


@pytest.mark.parametrize("_", [0])
def test_result_names_roundtrip_property(_):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from sdimage.dragbench import key_to_id

    seg = st.text(alphabet="ab_%M./é-", min_size=1, max_size=8)

    @settings(max_examples=300, deadline=None)
    @given(st.lists(seg, min_size=1, max_size=4), st.lists(seg, min_size=1, max_size=4))
    def check(a, b):
        x, y = "/".join(a), "/".join(b)
        assert key_to_id(sample_key(x)) == x
        assert (sample_key(x) == sample_key(y)) == (x == y)

    check()


def test_runner_names_verifies_resume_and_records_settings(tiny_pipe, tmp_path):
    """'a__b' (SDE-Drag layout) and 'a/b' (DragDiffusion layout) both survive; a 0-byte PNG, a truncated PNG or a PNG
    without its JSON is redone; the settings are in manifest.json and a resume with others is refused."""
    from sdimage.dragbench import MANIFEST, _result_ok
    from sdimage.drag import DragConfig

    root = tmp_path / "bench"
    write_sample(make_sample(5, n=1), root / "a__b", "sde-drag")
    write_sample(make_sample(6, n=1), root / "a" / "b", "dragdiffusion")
    write_sample(make_sample(7, n=1), root / "c", "sde-drag")
    cfg = DragConfig(steps=2, t0=0.5, lora_steps=0, step_size=20.0, guidance_max=1.0)
    out = tmp_path / "out"
    s = run_dragbench(tiny_pipe, root, out, sampler="ode", config=cfg, progress=False)
    assert s["ran"] == 3
    assert sorted(p.name for p in out.glob("*.png")) == ["a%5F%5Fb.png", "a__b.png", "c.png"]
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["settings"]["sampler"] == "ode" and manifest["settings"]["config"]["steps"] == 2
    assert all(_result_ok(out, sid, manifest["settings"]) for sid in ("a__b", "a/b", "c"))

    (out / "a__b.png").write_bytes(b"")  # 0 bytes
    data = (out / "c.png").read_bytes()
    (out / "c.png").write_bytes(data[: len(data) // 2])  # truncated
    (out / "a%5F%5Fb.json").unlink()  # PNG without its JSON
    again = run_dragbench(tiny_pipe, root, out, sampler="ode", config=cfg, progress=False)
    assert again["ran"] == 3 and again["skipped"] == 0
    assert run_dragbench(tiny_pipe, root, out, sampler="ode", config=cfg, progress=False)["ran"] == 0

    with pytest.raises(SdImageError, match=r"other settings \(sampler 'ode' -> 'sde', steps 2 -> 4"):
        run_dragbench(tiny_pipe, root, out, sampler="sde", config=DragConfig(**{**cfg.to_dict(), "steps": 4}),
                      progress=False)
    (out / MANIFEST).unlink()  # a folder from before manifests: its result JSONs still say how they were made
    with pytest.raises(SdImageError, match="sampler 'ode' -> 'sde'"):
        run_dragbench(tiny_pipe, root, out, sampler="sde", config=cfg, progress=False)
    over = run_dragbench(tiny_pipe, root, out, sampler="sde", config=cfg, progress=False, overwrite=True)
    assert over["ran"] == 3  # nothing of the other settings is trusted
    assert json.loads((out / MANIFEST).read_text())["settings"]["sampler"] == "sde"
    m = evaluate_dragbench(root, out, lpips=lambda a, b: 0.0, progress=False)
    assert m["evaluated"] == 3 and m["missing"] == []


@pytest.mark.parametrize("what, msg", [
    ("inf", "non-finite coordinate"), ("string-point", "pairs of finite numbers"),
    ("ragged-mask", "'mask' must be an H×W array of numbers"), ("string-mask", "'mask' must be an H×W array"),
])
def test_hostile_sample_values_are_one_line_errors(tmp_path, what, msg):
    d = write_sample(make_sample(8, n=1), tmp_path / "s", "dragdiffusion" if "mask" in what else "sde-drag")
    if what == "inf":
        (d / "prompt.json").write_text('{"prompt": "x", "source": [[Infinity, 2]], "target": [[5, 6]]}')
    elif what == "string-point":
        (d / "prompt.json").write_text('{"prompt": "x", "source": ["12"], "target": [[5, 6]]}')
    else:
        mask = [[0, 1], [1]] if what == "ragged-mask" else "abc"
        (d / "meta_data.pkl").write_bytes(pickle.dumps({"prompt": "x", "points": [[1, 2], [5, 6]], "mask": mask}))
    with pytest.raises(SdImageError, match=msg):
        read_sample(d)
