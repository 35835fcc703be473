"""SD3/3.5: an MM-DiT on CLIP-L + CLIP-G + T5 tokens and pooled CLIP, velocity output, flow-matching sigmas with
the scheduler's fixed shift, CFG in one batched call."""
from __future__ import annotations

import torch

from ._base import Cond, labels
from ._flow import FlowBackbone
from ._registry import register

__all__ = ["SD3Backbone", "SD3_SCHEDULER_CONFIG"]

# Stable Diffusion 3 medium's scheduler config (FlowMatchEulerDiscreteScheduler).
SD3_SCHEDULER_CONFIG = dict(num_train_timesteps=1000, shift=3.0)


@register
class SD3Backbone(FlowBackbone):
    arch = "sd3"
    label = "SD3/3.5"
    order = 30
    pipeline_classes = ("StableDiffusion3Pipeline", "StableDiffusion3Img2ImgPipeline",
                        "StableDiffusion3InpaintPipeline")
    model_classes = ("SD3Transformer2DModel",)
    subfolders = ("transformer", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "scheduler")
    default_guidance = 7.0

    @classmethod
    def build_tiny(cls, inpaint: bool = False, prediction_type: str = "epsilon"):
        """``StableDiffusion3Pipeline``: two CLIP encoders with projection (32, 64) + a T5 encoder (128), an MMDiT
        with patch 2, 16-channel VAE (scaling 1.5305, shift 0.0609), flow matching with shift 3."""
        from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
        from transformers import CLIPTextModelWithProjection

        from ..tiny import clip_config, make_t5_tokenizer, make_tokenizer, t5_encoder, tiny_vae

        tokenizer, tokenizer_2, tokenizer_3 = make_tokenizer(), make_tokenizer(), make_t5_tokenizer()
        text_encoder = CLIPTextModelWithProjection(clip_config(tokenizer, 32, 3))  # CLIP-L's role
        text_encoder_2 = CLIPTextModelWithProjection(clip_config(tokenizer_2, 64, 3, act="gelu"))  # CLIP-G's
        text_encoder_3 = t5_encoder(tokenizer_3, 128)  # wider than the CLIPs' 32 + 64, as T5-XXL is (4096 ≥ 2048)
        transformer = SD3Transformer2DModel(
            sample_size=32, patch_size=2, in_channels=16, out_channels=16, num_layers=2, attention_head_dim=16,
            num_attention_heads=2, joint_attention_dim=128, caption_projection_dim=32,
            pooled_projection_dim=32 + 64,  # both CLIPs' projected (pooled) embeddings, concatenated
            pos_embed_max_size=96,
        )
        vae = tiny_vae(16, scaling_factor=1.5305, shift_factor=0.0609, quant_conv=False)
        scheduler = FlowMatchEulerDiscreteScheduler.from_config(dict(SD3_SCHEDULER_CONFIG))
        return StableDiffusion3Pipeline(
            transformer=transformer, scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
            text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, text_encoder_3=text_encoder_3,
            tokenizer_3=tokenizer_3,
        )

    @torch.no_grad()
    def encode_prompt(self, prompt: str, negative: str | None = "") -> tuple[Cond, Cond | None]:
        pe, npe, pooled, npooled = self.pipe.encode_prompt(prompt=prompt, prompt_2=None, prompt_3=None,
                                                           device=self.device, num_images_per_prompt=1,
                                                           do_classifier_free_guidance=negative is not None,
                                                           negative_prompt=negative)
        return Cond(pe, pooled), (Cond(npe, npooled) if negative is not None else None)

    def forward(self, x, t, cond, guidance=None, attn=None):
        tin = labels(t, x.shape[0], x.device, x.dtype)
        return self.denoiser(hidden_states=x, timestep=tin, encoder_hidden_states=cond.embeds,
                             pooled_projections=cond.pooled, joint_attention_kwargs=None if attn is None else dict(attn),
                             return_dict=False)[0]

