"""Stable Diffusion 1.x/2.x: a UNet on CLIP tokens, ε- or v-prediction, the DDIM grid (VP path), CFG in one
batched call.  The tiny offline model (64×64 images, 32×32×4 latents) and an SD-1.5-shaped random pipeline for
timing."""
from __future__ import annotations

from typing import Any

import torch

from ._base import Backbone
from ._registry import register

__all__ = ["SDBackbone", "SD15_SCHEDULER_CONFIG", "make_sd15_shaped_pipeline"]

# Stable Diffusion 1.5's scheduler config (PNDM, as shipped); every sampler here rebuilds a scheduler from it.
SD15_SCHEDULER_CONFIG = dict(
    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
    set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1, clip_sample=False,
)


@register
class SDBackbone(Backbone):
    """Stable Diffusion 1.x/2.x (the base class's behaviour)."""

    arch = "sd"
    label = "Stable Diffusion 1.x/2.x"
    order = 10
    pipeline_classes = ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline",
                        "StableDiffusionDiffEditPipeline")
    model_classes = ("UNet2DConditionModel",)
    subfolders = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
    tiny_inpaint = True
    tiny_prediction_types = ("epsilon", "v_prediction")
    default_guidance = 7.5

    @classmethod
    def load_kwargs(cls) -> dict[str, Any]:
        return dict(safety_checker=None, feature_extractor=None, requires_safety_checker=False)

    @classmethod
    def matches(cls, pipe) -> bool:
        return super().matches(pipe) and getattr(pipe, "text_encoder_2", None) is None

    @classmethod
    def build_tiny(cls, inpaint: bool = False, prediction_type: str = "epsilon"):
        """``StableDiffusionPipeline`` (UNet in_channels 9 when ``inpaint``) with SD-1.5's scheduler config:
        UNet widths (32, 64), CLIP text encoder of width 32 with 5 layers, the byte-level CLIP tokenizer."""
        from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
        from transformers import CLIPTextConfig, CLIPTextModel

        from ..tiny import make_tokenizer

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
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id, hidden_size=32, intermediate_size=37, layer_norm_eps=1e-5,
            num_attention_heads=4, num_hidden_layers=5, vocab_size=len(tokenizer), max_position_embeddings=77,
            projection_dim=32,
        )
        text_encoder = CLIPTextModel(text_config)
        scheduler = PNDMScheduler.from_config({**SD15_SCHEDULER_CONFIG, "prediction_type": prediction_type})
        return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                       scheduler=scheduler, **cls.load_kwargs())

    def _fingerprint_tensors(self):
        return [self.denoiser.conv_in.weight, self.denoiser.conv_out.weight]  # LoRA-free layers


def make_sd15_shaped_pipeline(seed: int = 0, text_layers: int = 12, full_vae: bool = True, inpaint: bool = False,
                              dtype: torch.dtype = torch.float32):
    """Random weights with Stable Diffusion 1.5's shapes (UNet 860M params, VAE 84M, CLIP-L-sized text encoder
    with ``text_layers`` layers; the tokenizer is the byte-level one).  For timing and memory measurements only.
    ``full_vae=False`` uses the tiny VAE (factor 2) to keep CPU smoke tests quick."""
    from ..tiny import seeded

    return seeded(_sd15_shaped_pipeline, seed, text_layers, full_vae, inpaint, dtype)


def _sd15_shaped_pipeline(text_layers: int, full_vae: bool, inpaint: bool, dtype: torch.dtype):
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from ..tiny import make_tokenizer

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
        scheduler=PNDMScheduler.from_config(dict(SD15_SCHEDULER_CONFIG)), **SDBackbone.load_kwargs(),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe if dtype == torch.float32 else pipe.to(dtype=dtype)
