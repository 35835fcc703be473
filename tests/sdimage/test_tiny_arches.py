"""The tiny offline pipelines of every family (``sdimage.tiny.make_tiny_pipeline(arch=...)``): diffusers-format
round trip, the family's own text-to-image and image-to-image pipelines end to end, latent geometry, offline
tokenizers, determinism, and the unchanged default ("sd") weights."""
from __future__ import annotations

import hashlib

import pytest
import torch

from sdimage.backbones.flux import FLUX_SCHEDULER_CONFIG
from sdimage.backbones.sd3 import SD3_SCHEDULER_CONFIG
from sdimage.backbones.sdxl import SDXL_SCHEDULER_CONFIG
from sdimage.tiny import make_t5_tokenizer, make_tiny_pipeline, save_tiny_model

ARCHS = ("sdxl", "sd3", "flux")
PIPELINE_CLASS = {"sd": "StableDiffusionPipeline", "sdxl": "StableDiffusionXLPipeline",
                  "sd3": "StableDiffusion3Pipeline", "flux": "FluxPipeline"}
IMG2IMG_CLASS = {"sdxl": "StableDiffusionXLImg2ImgPipeline", "sd3": "StableDiffusion3Img2ImgPipeline",
                 "flux": "FluxImg2ImgPipeline"}
# arch: (latent channels, scaling_factor, shift_factor, scheduler class, scheduler config, output_type="latent" shape)
GEOMETRY = {
    "sdxl": (4, 0.13025, None, "EulerDiscreteScheduler", SDXL_SCHEDULER_CONFIG, (1, 4, 32, 32)),
    "sd3": (16, 1.5305, 0.0609, "FlowMatchEulerDiscreteScheduler", SD3_SCHEDULER_CONFIG, (1, 16, 32, 32)),
    # FLUX returns its latents packed: (64/2/2)² tokens of 2×2×16 channels
    "flux": (16, 0.3611, 0.1159, "FlowMatchEulerDiscreteScheduler", FLUX_SCHEDULER_CONFIG, (1, 256, 64)),
}
PROMPT = "a photo of a cat, ünïcode 猫 {weird} <tokens>"


def _diffusers_class(name):
    import diffusers

    return getattr(diffusers, name)


def _modules(pipe):
    return {k: v for k, v in pipe.components.items() if isinstance(v, torch.nn.Module)}


def _checksum(pipe) -> str:
    h = hashlib.sha256()
    for name, module in sorted(_modules(pipe).items()):
        for key, t in sorted(module.state_dict().items()):
            h.update(f"{name}.{key}".encode())
            h.update(t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def _assert_same_weights(a, b):
    ma, mb = _modules(a), _modules(b)
    assert ma.keys() == mb.keys()
    for name in ma:
        sa, sb = ma[name].state_dict(), mb[name].state_dict()
        assert sa.keys() == sb.keys(), name
        for key in sa:
            assert torch.equal(sa[key], sb[key]), f"{name}.{key}"


def _run(pipe, **kw):
    kw = {"prompt": "a red house", "height": 64, "width": 64, "num_inference_steps": 2, "output_type": "pt",
          "generator": torch.Generator().manual_seed(0), **kw}
    return pipe(**kw).images


@pytest.fixture(scope="module", params=ARCHS)
def built(request, tmp_path_factory):
    arch = request.param
    d = save_tiny_model(tmp_path_factory.mktemp(f"tiny-{arch}") / "model", seed=0, arch=arch)
    return arch, make_tiny_pipeline(seed=0, arch=arch), d


def test_sd_default_unchanged():
    """arch="sd" is the old code path: the defaults and the explicit old positional call draw the same weights."""
    default = _checksum(make_tiny_pipeline())
    assert _checksum(make_tiny_pipeline(arch="sd")) == default
    assert _checksum(make_tiny_pipeline(0, False, "epsilon")) == default
    assert type(make_tiny_pipeline(arch="sd")).__name__ == "StableDiffusionPipeline"


def test_roundtrip_and_geometry(built):
    from diffusers import DiffusionPipeline

    arch, pipe, d = built
    channels, scaling, shift, sched_cls, sched_cfg, _ = GEOMETRY[arch]
    loaded = DiffusionPipeline.from_pretrained(str(d), local_files_only=True)
    assert type(loaded).__name__ == type(pipe).__name__ == PIPELINE_CLASS[arch]
    own = _diffusers_class(PIPELINE_CLASS[arch]).from_pretrained(str(d), local_files_only=True)
    _assert_same_weights(pipe, loaded)
    _assert_same_weights(pipe, own)
    for p in (pipe, loaded):
        assert p.vae_scale_factor == 2
        assert p.vae.config.latent_channels == channels
        assert p.vae.config.scaling_factor == scaling
        assert p.vae.config.shift_factor == shift
        assert p.vae.config.force_upcast is True
        assert type(p.scheduler).__name__ == sched_cls
        assert {k: p.scheduler.config[k] for k in sched_cfg} == sched_cfg
    if arch == "sdxl":
        assert pipe.unet.config.addition_embed_type == "text_time"
        assert pipe.unet.config.cross_attention_dim == pipe.text_encoder.config.hidden_size + \
            pipe.text_encoder_2.config.hidden_size
    elif arch == "sd3":
        assert pipe.transformer.config.in_channels == channels and pipe.transformer.config.patch_size == 2
    else:
        assert pipe.transformer.config.in_channels == 4 * channels and pipe.transformer.config.guidance_embeds


def test_text_to_image(built):
    from diffusers import DiffusionPipeline

    arch, pipe, d = built
    loaded = DiffusionPipeline.from_pretrained(str(d), local_files_only=True)
    loaded.set_progress_bar_config(disable=True)
    out = _run(loaded, prompt=PROMPT)
    assert out.shape == (1, 3, 64, 64) and torch.isfinite(out).all()
    assert torch.equal(out, _run(pipe, prompt=PROMPT))  # the saved weights are the built ones
    latents = _run(pipe, num_inference_steps=1, output_type="latent")
    assert tuple(latents.shape) == GEOMETRY[arch][-1]


def test_image_to_image(built):
    arch, pipe, _ = built
    i2i = _diffusers_class(IMG2IMG_CLASS[arch])(**pipe.components)
    i2i.set_progress_bar_config(disable=True)
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    # FluxImg2ImgPipeline does not take the size from the image: without height/width it resizes to 256×256
    size = {"height": 64, "width": 64} if arch == "flux" else {}
    out = i2i(prompt="a blue car", image=image, strength=0.5, num_inference_steps=4, output_type="pt",
              generator=torch.Generator().manual_seed(0), **size).images
    assert out.shape == (1, 3, 64, 64) and torch.isfinite(out).all()


def test_tokenizers_roundtrip(built):
    from transformers import AutoTokenizer

    arch, pipe, d = built
    names = [n for n in ("tokenizer", "tokenizer_2", "tokenizer_3") if getattr(pipe, n, None) is not None]
    assert len(names) == {"sdxl": 2, "sd3": 3, "flux": 2}[arch]
    for n in names:
        tok = getattr(pipe, n)
        back = AutoTokenizer.from_pretrained(str(d / n), local_files_only=True)
        assert type(back).__name__ == type(tok).__name__
        assert back(PROMPT).input_ids == tok(PROMPT).input_ids
        padded = back(PROMPT, padding="max_length", max_length=100, truncation=True).input_ids
        encoder = getattr(pipe, "text_encoder" + n[len("tokenizer"):])
        assert len(padded) == 100 and max(padded) < encoder.config.vocab_size


def test_t5_tokenizer(tmp_path):
    from transformers import T5Tokenizer

    tok = make_t5_tokenizer()
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
    assert tok.convert_tokens_to_ids("<extra_id_0>") == len(tok) - 1  # sentinels last, reversed, as in T5
    ids = tok(PROMPT).input_ids
    assert ids[-1] == 1 and 2 in ids  # "</s>" ends it; characters outside the vocabulary are "<unk>"
    pieces = tok.convert_ids_to_tokens(tok("a photo of a cat").input_ids)
    assert pieces == ["▁a", "▁photo", "▁of", "▁a", "▁cat", "</s>"]
    tok.save_pretrained(str(tmp_path))
    back = T5Tokenizer.from_pretrained(str(tmp_path))
    assert back(PROMPT).input_ids == ids and len(back) == len(tok) and back.model_max_length == 512


def test_same_seed_same_weights():
    for arch in ARCHS:
        a, b = make_tiny_pipeline(seed=3, arch=arch), make_tiny_pipeline(seed=3, arch=arch)
        _assert_same_weights(a, b)
        assert _checksum(make_tiny_pipeline(seed=4, arch=arch)) != _checksum(a)


def test_variants_and_bad_arguments():
    xl = make_tiny_pipeline(arch="sdxl", inpaint=True, prediction_type="v_prediction")
    assert xl.unet.config.in_channels == 9 and xl.scheduler.config.prediction_type == "v_prediction"
    with pytest.raises(ValueError, match="arch must be one of"):
        make_tiny_pipeline(arch="sd2")
    with pytest.raises(ValueError, match="prediction_type"):
        make_tiny_pipeline(arch="sdxl", prediction_type="sample")
    for arch in ("sd3", "flux"):
        with pytest.raises(ValueError, match="flow-matching"):
            make_tiny_pipeline(arch=arch, prediction_type="v_prediction")
        with pytest.raises(ValueError, match="inpaint"):
            make_tiny_pipeline(arch=arch, inpaint=True)
