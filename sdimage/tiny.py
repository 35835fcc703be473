"""A tiny, randomly initialised Stable Diffusion pipeline that works offline (tests, smoke runs, benchmarks).

64×64 images, 32×32×4 latents (VAE factor 2), a 5-layer CLIP text encoder of width 32 and a byte-level CLIP
tokenizer written by this module (no download).  Weights are random: outputs are noise-like, not images.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

__all__ = ["make_tiny_pipeline", "save_tiny_model", "make_tokenizer", "make_sd15_shaped_pipeline", "SD15_SCHEDULER_CONFIG"]

# Stable Diffusion 1.5's scheduler config (PNDM, as shipped); every sampler here rebuilds a scheduler from it.
SD15_SCHEDULER_CONFIG = dict(
    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
    set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1, clip_sample=False,
)


def _bytes_to_unicode() -> list[str]:
    """GPT-2's reversible byte → printable-unicode map (the 256 byte symbols of a byte-level BPE)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    order = sorted(range(256), key=lambda k: bs[k])
    return [chr(cs[k]) for k in order]


def write_tokenizer_files(directory: str | os.PathLike) -> tuple[Path, Path]:
    """Write a byte-level CLIP ``vocab.json`` (256 symbols, with and without ``</w>``, + BOS/EOS) and empty ``merges.txt``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    syms = _bytes_to_unicode()
    vocab: dict[str, int] = {}
    for s in syms:
        vocab[s] = len(vocab)
    for s in syms:
        vocab[s + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (d / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (d / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return d / "vocab.json", d / "merges.txt"


def make_tokenizer():
    """An offline ``CLIPTokenizer`` (byte-level vocabulary, no merges, model_max_length 77)."""
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        vocab, merges = write_tokenizer_files(tmp)
        return CLIPTokenizer(str(vocab), str(merges), model_max_length=77)


def _seeded(build, seed: int, *args, **kwargs):
    """Run ``build`` with torch's global generator seeded, restoring the caller's RNG state afterwards (module
    constructors draw their initial weights from the global generator; the library leaves no global state)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build(*args, **kwargs)


def make_tiny_pipeline(seed: int = 0, inpaint: bool = False, prediction_type: str = "epsilon"):
    """A random-weight SD pipeline (UNet in_channels 9 when ``inpaint``) with SD-1.5's scheduler config."""
    return _seeded(_tiny_pipeline, seed, inpaint, prediction_type)


def _tiny_pipeline(inpaint: bool, prediction_type: str):
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    if prediction_type not in ("epsilon", "v_prediction"):
        raise ValueError(f"prediction_type must be 'epsilon' or 'v_prediction', got {prediction_type!r}")
    tokenizer = make_tokenizer()
    unet = UNet2DConditionModel(
        sample_size=32, in_channels=9 if inpaint else 4, out_channels=4, layers_per_block=2,
        block_out_channels=(32, 64), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
    )
    vae = AutoencoderKL(
        block_out_channels=[32, 64], in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4, sample_size=64,
    )
    text_config = CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        hidden_size=32, intermediate_size=37, layer_norm_eps=1e-5, num_attention_heads=4, num_hidden_layers=5,
        vocab_size=len(tokenizer), max_position_embeddings=77, projection_dim=32,
    )
    text_encoder = CLIPTextModel(text_config)
    scheduler = PNDMScheduler.from_config({**SD15_SCHEDULER_CONFIG, "prediction_type": prediction_type})
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_model(directory: str | os.PathLike, seed: int = 0, inpaint: bool = False,
                    prediction_type: str = "epsilon") -> Path:
    """Write the tiny pipeline in diffusers format (``model_index.json`` + component folders) to ``directory``."""
    d = Path(directory)
    pipe = make_tiny_pipeline(seed=seed, inpaint=inpaint, prediction_type=prediction_type)
    pipe.save_pretrained(str(d), safe_serialization=True)
    return d


def make_sd15_shaped_pipeline(seed: int = 0, text_layers: int = 12, full_vae: bool = True, inpaint: bool = False,
                              dtype: torch.dtype = torch.float32):
    """Random weights with Stable Diffusion 1.5's shapes (UNet 860M params, VAE 84M, CLIP-L-sized text encoder
    with ``text_layers`` layers; the tokenizer is the byte-level one).  For timing and memory measurements only.
    ``full_vae=False`` uses the tiny VAE (factor 2) to keep CPU smoke tests quick."""
    return _seeded(_sd15_shaped_pipeline, seed, text_layers, full_vae, inpaint, dtype)


def _sd15_shaped_pipeline(text_layers: int, full_vae: bool, inpaint: bool, dtype: torch.dtype):
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = make_tokenizer()
    unet = UNet2DConditionModel(sample_size=64, in_channels=9 if inpaint else 4, out_channels=4,
                                cross_attention_dim=768, attention_head_dim=8)
    if full_vae:
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, block_out_channels=[128, 256, 512, 512],
            down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
            layers_per_block=2, sample_size=512,
        )
    else:
        vae = AutoencoderKL(
            block_out_channels=[32, 64], latent_channels=4, down_block_types=["DownEncoderBlock2D"] * 2,
            up_block_types=["UpDecoderBlock2D"] * 2,
        )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=text_layers,
        vocab_size=len(tokenizer), max_position_embeddings=77, projection_dim=768,
    ))
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
        scheduler=PNDMScheduler.from_config(dict(SD15_SCHEDULER_CONFIG)),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe if dtype == torch.float32 else pipe.to(dtype=dtype)
