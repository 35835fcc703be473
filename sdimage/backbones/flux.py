"""FLUX.1: an MM-DiT on T5 tokens + pooled CLIP, 2×2-packed latents with position ids, the distilled guidance
*embedding* (no unconditional branch), flow-matching sigmas ``linspace(1, 1/N)`` with μ from the image size."""
from __future__ import annotations

import torch
from torch import Tensor

from ..errors import SdImageError
from ._base import Cond, labels
from ._flow import FlowBackbone, pack2x2, unpack2x2
from ._registry import register

__all__ = ["FluxBackbone", "FLUX_SCHEDULER_CONFIG"]

# FLUX.1 [dev]'s scheduler config (FlowMatchEulerDiscreteScheduler with resolution-dependent shift).
FLUX_SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
    base_image_seq_len=256, max_image_seq_len=4096,
)


@register
class FluxBackbone(FlowBackbone):
    arch = "flux"
    label = "FLUX.1"
    order = 40
    pipeline_classes = ("FluxPipeline", "FluxImg2ImgPipeline", "FluxInpaintPipeline")
    model_classes = ("FluxTransformer2DModel",)
    subfolders = ("transformer", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "scheduler")
    packed = True
    linspace_sigmas_default = True
    cfg_batch = False
    guidance_embedded = True
    default_guidance = 3.5  # FLUX.1 [dev]'s guidance embedding

    @classmethod
    def build_tiny(cls, inpaint: bool = False, prediction_type: str = "epsilon"):
        """``FluxPipeline``: CLIP (32) + T5 (64), a FLUX transformer with guidance embedding over 2×2-packed latents
        (64 input channels), 16-channel VAE (scaling 0.3611, shift 0.1159), FLUX.1's dynamic shifting."""
        from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
        from transformers import CLIPTextModel

        from ..tiny import clip_config, make_t5_tokenizer, make_tokenizer, t5_encoder, tiny_vae

        tokenizer, tokenizer_2 = make_tokenizer(), make_t5_tokenizer()
        text_encoder = CLIPTextModel(clip_config(tokenizer, 32, 3))  # CLIP-L's role (pooled output only)
        text_encoder_2 = t5_encoder(tokenizer_2, 64)
        transformer = FluxTransformer2DModel(
            patch_size=1, in_channels=4 * 16,  # 16 latent channels packed 2×2
            num_layers=1, num_single_layers=2, attention_head_dim=16, num_attention_heads=2, joint_attention_dim=64,
            pooled_projection_dim=32, guidance_embeds=True, axes_dims_rope=(4, 6, 6),  # sums to attention_head_dim
        )
        vae = tiny_vae(16, scaling_factor=0.3611, shift_factor=0.1159, quant_conv=False)
        scheduler = FlowMatchEulerDiscreteScheduler.from_config(dict(FLUX_SCHEDULER_CONFIG))
        return FluxPipeline(
            scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
            text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, transformer=transformer,
        )

    @torch.no_grad()
    def encode_prompt(self, prompt: str, negative: str | None = "") -> tuple[Cond, Cond | None]:
        pe, pooled, text_ids = self.pipe.encode_prompt(prompt=prompt, prompt_2=None, device=self.device,
                                                       num_images_per_prompt=1)
        return Cond(pe, pooled, text_ids), None

    pack = staticmethod(pack2x2)
    unpack = staticmethod(unpack2x2)

    @staticmethod
    def image_ids(h: int, w: int, device, dtype) -> Tensor:
        ids = torch.zeros(h // 2, w // 2, 3)
        ids[..., 1] += torch.arange(h // 2)[:, None]
        ids[..., 2] += torch.arange(w // 2)[None, :]
        return ids.reshape(-1, 3).to(device=device, dtype=dtype)

    def forward(self, x, t, cond, guidance=None, attn=None):
        b, _, h, w = x.shape
        if h % 2 or w % 2:
            raise SdImageError(f"{self.label} needs an even latent size (image sides multiple of "
                               f"{self.image_multiple}); got a {h}x{w} latent")
        tin = labels(t, b, x.device, x.dtype, float(self.pipe.scheduler.config.num_train_timesteps))
        g = None
        if getattr(self.denoiser.config, "guidance_embeds", False):
            g = torch.full((b,), self.default_guidance if guidance is None else float(guidance), device=x.device,
                           dtype=torch.float32)
        out = self.denoiser(hidden_states=self.pack(x), timestep=tin, guidance=g, pooled_projections=cond.pooled,
                            encoder_hidden_states=cond.embeds, txt_ids=cond.text_ids,
                            img_ids=self.image_ids(h, w, x.device, x.dtype),
                            joint_attention_kwargs=None if attn is None else dict(attn), return_dict=False)[0]
        return self.unpack(out, h, w)

    def reference_kwargs(self, latent_hw, guidance):
        h, w = (int(v) * self.vae_factor for v in latent_hw)
        return {"guidance_scale": guidance, "height": h, "width": w}  # its pipelines default to 256², whatever
        # the input

    def reference_latents(self, out, latent_hw):
        return self.unpack(out, *latent_hw)  # FLUX returns packed latents
