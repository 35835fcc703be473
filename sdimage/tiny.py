"""Tiny, randomly initialised diffusion pipelines that work offline (tests, smoke runs, benchmarks), and the
offline parts their builders share.

Each family's tiny builder lives in its adapter module (:mod:`sdimage.backbones`, ``build_tiny``); it mirrors the
real model's component layout, latent geometry, VAE scaling and scheduler config at toy widths.  The VAE factor is
2 for every family, so a 64×64 image is a 32×32 latent.  This module holds what the builders share: the byte-level
CLIP tokenizer and the T5 tokenizer built in memory (no download), small CLIP / T5 text encoder configs, a
two-level AutoencoderKL, and :func:`make_tiny_pipeline` / :func:`save_tiny_model`, which run a builder with torch's
global generator seeded.  Weights are random: outputs are noise-like, not images.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

from .backbones import ARCHS

__all__ = ["make_tiny_pipeline", "save_tiny_model", "make_tokenizer", "make_t5_tokenizer", "clip_config",
           "t5_encoder", "tiny_vae", "seeded", "ARCHS"]


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


# A few whole-word pieces so common prompt words are single tokens (the rest falls back to characters).
_T5_WORDS = ("a", "an", "the", "of", "in", "on", "and", "with", "photo", "painting", "cat", "dog", "house", "tree",
             "red", "blue", "green", "man", "woman", "car", "sky")


def make_t5_tokenizer(extra_ids: int = 100, model_max_length: int = 512):
    """An offline T5 tokenizer (transformers' tokenizers-backed ``T5Tokenizer``) over a small Unigram vocabulary.

    Layout as in T5's: ``<pad>`` = 0, ``</s>`` = 1, ``<unk>`` = 2, then ``▁`` and the pieces (printable ASCII
    characters, with and without the ``▁`` word-start marker, and a few whole words), then the ``extra_ids``
    sentinels ``<extra_id_N>`` in reverse order, so ``<extra_id_0>`` is the last id.  Characters outside the
    vocabulary become ``<unk>``; every sequence ends with ``</s>``.
    """
    import string

    from transformers import T5Tokenizer

    vocab: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [("\u2581" + w, -3.0) for w in _T5_WORDS]
    for c in string.ascii_letters + string.digits + string.punctuation:
        vocab += [("\u2581" + c, -6.0), (c, -5.0)]
    vocab += [(f"<extra_id_{i}>", 0.0) for i in range(extra_ids - 1, -1, -1)]
    return T5Tokenizer(vocab=vocab, extra_ids=extra_ids, model_max_length=model_max_length)


def seeded(build, seed: int, *args, **kwargs):
    """Run ``build`` with torch's global generator seeded, restoring the caller's RNG state afterwards (module
    constructors draw their initial weights from the global generator; the library leaves no global state)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build(*args, **kwargs)


def make_tiny_pipeline(seed: int = 0, inpaint: bool = False, prediction_type: str = "epsilon",
                       arch: str | None = None):
    """A random-weight pipeline of family ``arch`` (one of ``ARCHS``; default the first), deterministic in
    ``seed``: the family adapter's ``build_tiny`` (:mod:`sdimage.backbones`) run with torch's global generator
    seeded.

    ``inpaint`` (a 9-channel inpainting UNet) and ``prediction_type`` are accepted where the family declares them
    (``tiny_inpaint``, ``tiny_prediction_types``); flow-matching families take neither.  Image sides must be
    multiples of the adapter's ``image_multiple``.
    """
    from .backbones import adapter_class

    arch = ARCHS[0] if arch is None else arch
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {', '.join(map(repr, ARCHS))}, got {arch!r}")
    cls = adapter_class(arch)
    if prediction_type not in cls.tiny_prediction_types:
        if cls.tiny_prediction_types == ("epsilon",):
            raise ValueError(f"arch {arch!r} is a flow-matching model and has no prediction_type option "
                             f"(got {prediction_type!r})")
        raise ValueError(f"prediction_type must be one of {', '.join(map(repr, cls.tiny_prediction_types))}, "
                         f"got {prediction_type!r}")
    if inpaint and not cls.tiny_inpaint:
        raise ValueError(f"arch {arch!r} has no inpainting variant: its inpaint pipeline uses the base model")
    pipe = seeded(cls.build_tiny, seed, inpaint, prediction_type)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def clip_config(tokenizer, hidden: int, layers: int, act: str = "quick_gelu"):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        hidden_size=hidden, intermediate_size=2 * hidden, layer_norm_eps=1e-5, num_attention_heads=4,
        num_hidden_layers=layers, vocab_size=len(tokenizer), max_position_embeddings=77, projection_dim=hidden,
        hidden_act=act,
    )


def t5_encoder(tokenizer, d_model: int, layers: int = 2):
    """A T5 v1.1-style encoder (gated GELU, untied embeddings) of width ``d_model``."""
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(
        vocab_size=len(tokenizer), d_model=d_model, d_kv=d_model // 4, d_ff=2 * d_model, num_layers=layers,
        num_heads=4, relative_attention_num_buckets=32, relative_attention_max_distance=128,
        feed_forward_proj="gated-gelu", tie_word_embeddings=False, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.pad_token_id, dropout_rate=0.0,
    ))


def tiny_vae(latent_channels: int, scaling_factor: float, shift_factor: float | None, quant_conv: bool):
    """Two-level AutoencoderKL (VAE factor 2) of widths 32/64."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=[32, 64], in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=latent_channels, sample_size=64,
        scaling_factor=scaling_factor, shift_factor=shift_factor, force_upcast=True,
        use_quant_conv=quant_conv, use_post_quant_conv=quant_conv,
    )


def save_tiny_model(directory: str | os.PathLike, seed: int = 0, inpaint: bool = False,
                    prediction_type: str = "epsilon", arch: str | None = None) -> Path:
    """Write the tiny pipeline in diffusers format (``model_index.json`` + component folders) to ``directory``;
    ``diffusers.DiffusionPipeline.from_pretrained(directory, local_files_only=True)`` loads it back."""
    d = Path(directory)
    pipe = make_tiny_pipeline(seed=seed, inpaint=inpaint, prediction_type=prediction_type, arch=arch)
    pipe.save_pretrained(str(d), safe_serialization=True)
    return d
