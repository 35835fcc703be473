"""Tiny, randomly initialised diffusion pipelines that work offline (tests, smoke runs, benchmarks).

``arch="sd"`` (the default): Stable Diffusion 1.x shapes — 64×64 images, 32×32×4 latents (VAE factor 2), a 5-layer
CLIP text encoder of width 32 and a byte-level CLIP tokenizer written by this module (no download).

The other families mirror their real models' component layout, latent geometry, VAE scaling and scheduler config
at toy widths (see ``make_tiny_pipeline``); their VAE factor is 2 as well, so a 64×64 image is a 32×32 latent:

* ``"sdxl"``: two CLIP encoders (CLIP-L-like width 32, bigG-like width 64 with projection), a ``text_time`` UNet,
  4-channel VAE (scaling 0.13025, ``force_upcast``), Euler with SDXL's config.
* ``"sd3"``: two CLIP encoders with projection (32, 64) + a T5 encoder (128), an MMDiT with patch 2, 16-channel
  VAE (scaling 1.5305, shift 0.0609), flow matching with shift 3.
* ``"flux"``: CLIP (32) + T5 (64), a FLUX transformer with guidance embedding over 2×2-packed latents (64 input
  channels), 16-channel VAE (scaling 0.3611, shift 0.1159), flow matching with FLUX.1's dynamic shifting.

T5 tokenizers are small in-memory Unigram vocabularies (``make_t5_tokenizer``).  Weights are random: outputs are
noise-like, not images.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

__all__ = [
    "make_tiny_pipeline", "save_tiny_model", "make_tokenizer", "make_t5_tokenizer", "make_sd15_shaped_pipeline",
    "ARCHS", "SD15_SCHEDULER_CONFIG", "SDXL_SCHEDULER_CONFIG", "SD3_SCHEDULER_CONFIG", "FLUX_SCHEDULER_CONFIG",
]

# Model families ``make_tiny_pipeline`` can build.
ARCHS = ("sd", "sdxl", "sd3", "flux")

# Stable Diffusion 1.5's scheduler config (PNDM, as shipped); every sampler here rebuilds a scheduler from it.
SD15_SCHEDULER_CONFIG = dict(
    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
    set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1, clip_sample=False,
)

# Stable Diffusion XL 1.0 base's scheduler config (EulerDiscreteScheduler, as shipped, including the DDIM/PNDM keys
# Euler ignores: a DDIMScheduler built from_config must read clip_sample=False and set_alpha_to_one=False, as from
# the real file, or it would clip x̂_0).
SDXL_SCHEDULER_CONFIG = dict(
    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000, steps_offset=1,
    timestep_spacing="leading", prediction_type="epsilon", interpolation_type="linear", use_karras_sigmas=False,
    clip_sample=False, sample_max_value=1.0, set_alpha_to_one=False, skip_prk_steps=True,
)

# Stable Diffusion 3 medium's scheduler config (FlowMatchEulerDiscreteScheduler).
SD3_SCHEDULER_CONFIG = dict(num_train_timesteps=1000, shift=3.0)

# FLUX.1 [dev]'s scheduler config (FlowMatchEulerDiscreteScheduler with resolution-dependent shift).
FLUX_SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
    base_image_seq_len=256, max_image_seq_len=4096,
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


def _seeded(build, seed: int, *args, **kwargs):
    """Run ``build`` with torch's global generator seeded, restoring the caller's RNG state afterwards (module
    constructors draw their initial weights from the global generator; the library leaves no global state)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build(*args, **kwargs)


def make_tiny_pipeline(seed: int = 0, inpaint: bool = False, prediction_type: str = "epsilon", arch: str = "sd"):
    """A random-weight pipeline of family ``arch`` (one of ``ARCHS``), deterministic in ``seed``.

    * ``"sd"``: ``StableDiffusionPipeline`` (UNet in_channels 9 when ``inpaint``) with SD-1.5's scheduler config.
    * ``"sdxl"``: ``StableDiffusionXLPipeline`` (UNet in_channels 9 when ``inpaint``, for
      ``StableDiffusionXLInpaintPipeline``) with SDXL's Euler config.
    * ``"sd3"``: ``StableDiffusion3Pipeline``; ``"flux"``: ``FluxPipeline`` (with guidance embedding, like
      FLUX.1 [dev]).  These are flow-matching models: ``prediction_type`` must stay ``"epsilon"`` (the default,
      meaning "not specified") and ``inpaint`` False (diffusers' SD3/FLUX inpaint pipelines use the base model).

    The VAE factor is 2 for every family (64×64 image → 32×32 latent).  Image sides must be multiples of 2 for sd
    and sdxl, of 4 for sd3 (VAE factor × patch size 2) and flux (VAE factor × 2×2 latent packing).  Pass
    ``height``/``width`` to FLUX's pipelines: they default to 256×256 whatever the model or input image.
    """
    if arch == "sd":
        return _seeded(_tiny_pipeline, seed, inpaint, prediction_type)
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {', '.join(map(repr, ARCHS))}, got {arch!r}")
    if arch == "sdxl":
        if prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(f"prediction_type must be 'epsilon' or 'v_prediction', got {prediction_type!r}")
        return _seeded(_tiny_sdxl_pipeline, seed, inpaint, prediction_type)
    if prediction_type != "epsilon":
        raise ValueError(f"arch {arch!r} is a flow-matching model and has no prediction_type option "
                         f"(got {prediction_type!r})")
    if inpaint:
        raise ValueError(f"arch {arch!r} has no inpainting variant: its inpaint pipeline uses the base model")
    return _seeded(_tiny_sd3_pipeline if arch == "sd3" else _tiny_flux_pipeline, seed)


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


def _clip_config(tokenizer, hidden: int, layers: int, act: str = "quick_gelu"):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        hidden_size=hidden, intermediate_size=2 * hidden, layer_norm_eps=1e-5, num_attention_heads=4,
        num_hidden_layers=layers, vocab_size=len(tokenizer), max_position_embeddings=77, projection_dim=hidden,
        hidden_act=act,
    )


def _t5_encoder(tokenizer, d_model: int, layers: int = 2):
    """A T5 v1.1-style encoder (gated GELU, untied embeddings) of width ``d_model``."""
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(
        vocab_size=len(tokenizer), d_model=d_model, d_kv=d_model // 4, d_ff=2 * d_model, num_layers=layers,
        num_heads=4, relative_attention_num_buckets=32, relative_attention_max_distance=128,
        feed_forward_proj="gated-gelu", tie_word_embeddings=False, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.pad_token_id, dropout_rate=0.0,
    ))


def _tiny_vae(latent_channels: int, scaling_factor: float, shift_factor: float | None, quant_conv: bool):
    """Two-level AutoencoderKL (VAE factor 2) of widths 32/64."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=[32, 64], in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=latent_channels, sample_size=64,
        scaling_factor=scaling_factor, shift_factor=shift_factor, force_upcast=True,
        use_quant_conv=quant_conv, use_post_quant_conv=quant_conv,
    )


def _tiny_sdxl_pipeline(inpaint: bool, prediction_type: str):
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tokenizer, tokenizer_2 = make_tokenizer(), make_tokenizer()
    text_encoder = CLIPTextModel(_clip_config(tokenizer, 32, 3))  # CLIP-L's role
    text_encoder_2 = CLIPTextModelWithProjection(_clip_config(tokenizer_2, 64, 3, act="gelu"))  # OpenCLIP bigG's
    unet = UNet2DConditionModel(
        sample_size=32, in_channels=9 if inpaint else 4, out_channels=4, layers_per_block=2,
        block_out_channels=(32, 64), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4), use_linear_projection=True,
        transformer_layers_per_block=(1, 2), cross_attention_dim=32 + 64,  # both encoders' hidden states, concatenated
        addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + 64,  # 6 size/crop numbers × 8 + text_encoder_2's projection
    )
    vae = _tiny_vae(4, scaling_factor=0.13025, shift_factor=None, quant_conv=True)
    scheduler = EulerDiscreteScheduler.from_config({**SDXL_SCHEDULER_CONFIG, "prediction_type": prediction_type})
    pipe = StableDiffusionXLPipeline(
        vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tokenizer,
        tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler, add_watermarker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _tiny_sd3_pipeline():
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection

    tokenizer, tokenizer_2, tokenizer_3 = make_tokenizer(), make_tokenizer(), make_t5_tokenizer()
    text_encoder = CLIPTextModelWithProjection(_clip_config(tokenizer, 32, 3))  # CLIP-L's role
    text_encoder_2 = CLIPTextModelWithProjection(_clip_config(tokenizer_2, 64, 3, act="gelu"))  # CLIP-G's
    text_encoder_3 = _t5_encoder(tokenizer_3, 128)  # wider than the CLIPs' 32 + 64, as T5-XXL is (4096 ≥ 2048)
    transformer = SD3Transformer2DModel(
        sample_size=32, patch_size=2, in_channels=16, out_channels=16, num_layers=2, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=128, caption_projection_dim=32,
        pooled_projection_dim=32 + 64,  # both CLIPs' projected (pooled) embeddings, concatenated
        pos_embed_max_size=96,
    )
    vae = _tiny_vae(16, scaling_factor=1.5305, shift_factor=0.0609, quant_conv=False)
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(dict(SD3_SCHEDULER_CONFIG))
    pipe = StableDiffusion3Pipeline(
        transformer=transformer, scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
        text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, text_encoder_3=text_encoder_3,
        tokenizer_3=tokenizer_3,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _tiny_flux_pipeline():
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel

    tokenizer, tokenizer_2 = make_tokenizer(), make_t5_tokenizer()
    text_encoder = CLIPTextModel(_clip_config(tokenizer, 32, 3))  # CLIP-L's role (pooled output only)
    text_encoder_2 = _t5_encoder(tokenizer_2, 64)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=4 * 16,  # 16 latent channels packed 2×2
        num_layers=1, num_single_layers=2, attention_head_dim=16, num_attention_heads=2, joint_attention_dim=64,
        pooled_projection_dim=32, guidance_embeds=True, axes_dims_rope=(4, 6, 6),  # sums to attention_head_dim
    )
    vae = _tiny_vae(16, scaling_factor=0.3611, shift_factor=0.1159, quant_conv=False)
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(dict(FLUX_SCHEDULER_CONFIG))
    pipe = FluxPipeline(
        scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2, transformer=transformer,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_model(directory: str | os.PathLike, seed: int = 0, inpaint: bool = False,
                    prediction_type: str = "epsilon", arch: str = "sd") -> Path:
    """Write the tiny pipeline in diffusers format (``model_index.json`` + component folders) to ``directory``;
    ``diffusers.DiffusionPipeline.from_pretrained(directory, local_files_only=True)`` loads it back."""
    d = Path(directory)
    pipe = make_tiny_pipeline(seed=seed, inpaint=inpaint, prediction_type=prediction_type, arch=arch)
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
