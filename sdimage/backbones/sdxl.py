"""SDXL: two CLIP encoders (tokens concatenated, pooled from the second), a ``text_time`` UNet with
``time_ids`` = (H, W, 0, 0, H, W), the DDIM grid (VP path); its float16 VAE is upcast for encode/decode."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._base import Backbone, Cond, labels
from ._registry import register

__all__ = ["SDXLBackbone", "SDXL_SCHEDULER_CONFIG"]

# Stable Diffusion XL 1.0 base's scheduler config (EulerDiscreteScheduler, as shipped, including the DDIM/PNDM keys
# Euler ignores: a DDIMScheduler built from_config must read clip_sample=False and set_alpha_to_one=False, as from
# the real file, or it would clip x̂_0).
SDXL_SCHEDULER_CONFIG = dict(
    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000, steps_offset=1,
    timestep_spacing="leading", prediction_type="epsilon", interpolation_type="linear", use_karras_sigmas=False,
    clip_sample=False, sample_max_value=1.0, set_alpha_to_one=False, skip_prk_steps=True,
)


@register
class SDXLBackbone(Backbone):
    """SDXL: CFG in one batched call; an empty negative prompt gives zero embeddings (as diffusers)."""

    arch = "sdxl"
    label = "SDXL"
    order = 20
    pipeline_classes = ("StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline",
                        "StableDiffusionXLInpaintPipeline")
    model_classes = ("UNet2DConditionModel",)
    subfolders = ("unet", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "scheduler")
    tiny_inpaint = True
    tiny_prediction_types = ("epsilon", "v_prediction")
    default_guidance = 7.5

    @classmethod
    def load_kwargs(cls) -> dict[str, Any]:
        return dict(add_watermarker=False)

    @classmethod
    def matches(cls, pipe) -> bool:
        return super().matches(pipe) and getattr(pipe, "text_encoder_2", None) is not None

    @classmethod
    def build_tiny(cls, inpaint: bool = False, prediction_type: str = "epsilon"):
        """``StableDiffusionXLPipeline``: CLIP-L-like (32) and bigG-like (64, projection) encoders, a ``text_time``
        UNet (9 input channels when ``inpaint``), 4-channel VAE (scaling 0.13025, ``force_upcast``), SDXL's Euler
        config."""
        from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTextModelWithProjection

        from ..tiny import clip_config, make_tokenizer, tiny_vae

        tokenizer, tokenizer_2 = make_tokenizer(), make_tokenizer()
        text_encoder = CLIPTextModel(clip_config(tokenizer, 32, 3))  # CLIP-L's role
        text_encoder_2 = CLIPTextModelWithProjection(clip_config(tokenizer_2, 64, 3, act="gelu"))  # OpenCLIP bigG's
        unet = UNet2DConditionModel(
            sample_size=32, in_channels=9 if inpaint else 4, out_channels=4, layers_per_block=2,
            block_out_channels=(32, 64), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4), use_linear_projection=True,
            transformer_layers_per_block=(1, 2), cross_attention_dim=32 + 64,  # both encoders' states, concatenated
            addition_embed_type="text_time", addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=6 * 8 + 64,  # 6 size/crop numbers × 8 + text_encoder_2's projection
        )
        vae = tiny_vae(4, scaling_factor=0.13025, shift_factor=None, quant_conv=True)
        scheduler = EulerDiscreteScheduler.from_config({**SDXL_SCHEDULER_CONFIG, "prediction_type": prediction_type})
        return StableDiffusionXLPipeline(
            vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tokenizer,
            tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler, **cls.load_kwargs(),
        )

    @torch.no_grad()
    def encode_prompt(self, prompt: str, negative: str | None = "") -> tuple[Cond, Cond | None]:
        # diffusers' SDXL default: an empty negative prompt means zero embeddings (force_zeros_for_empty_prompt)
        neg = None if negative == "" else negative
        pe, npe, pooled, npooled = self.pipe.encode_prompt(prompt=prompt, device=self.device, num_images_per_prompt=1,
                                                           do_classifier_free_guidance=negative is not None,
                                                           negative_prompt=neg)
        return Cond(pe, pooled), (Cond(npe, npooled) if negative is not None else None)

    def time_ids(self, x: Tensor) -> Tensor:
        h, w = (int(v) * self.vae_factor for v in x.shape[-2:])
        return torch.tensor([[h, w, 0, 0, h, w]], device=x.device, dtype=x.dtype).expand(x.shape[0], -1)

    def forward(self, x, t, cond, guidance=None, attn=None):
        tin = labels(t, x.shape[0], x.device, torch.long)
        added = {"text_embeds": cond.pooled, "time_ids": self.time_ids(x)}
        return self.denoiser(x, tin, encoder_hidden_states=cond.embeds, added_cond_kwargs=added,
                             cross_attention_kwargs=attn, return_dict=False)[0]

    def _fingerprint_tensors(self):
        return [self.denoiser.conv_in.weight, self.denoiser.conv_out.weight]

