"""Qwen-Image: an MMDiT (``QwenImageTransformer2DModel``) on Qwen2.5-VL hidden states, a 16-channel Wan-style VAE
(``AutoencoderKLQwenImage``: a frame axis, latents normalised per channel by the config's ``latents_mean`` /
``latents_std``), 2×2-packed latents, flow matching with the resolution-dependent shift, and *true* CFG: the
negative prompt runs as a second call (its token length differs) and the guided velocity is rescaled per token to
the conditional one's norm, as diffusers' Qwen-Image pipelines do.

This module is the whole family: adapter, tiny offline model (the Qwen2 byte-level BPE tokenizer is built in
memory) and the diffusers pipelines the tests compare against.  Nothing outside it names the family.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..errors import SdImageError
from ._base import Cond, labels, vae_precision
from ._flow import FlowBackbone, pack2x2, unpack2x2
from ._registry import register

__all__ = ["QwenImageBackbone", "QWENIMAGE_SCHEDULER_CONFIG", "make_qwen_tokenizer"]

# Qwen-Image's scheduler config (FlowMatchEulerDiscreteScheduler with the resolution-dependent exponential shift and
# a terminal sigma of 0.02), as published with the model (Qwen/Qwen-Image scheduler/scheduler_config.json).
QWENIMAGE_SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=0.9,
    base_image_seq_len=256, max_image_seq_len=8192, shift_terminal=0.02, time_shift_type="exponential",
    invert_sigmas=False, stochastic_sampling=False, use_karras_sigmas=False, use_exponential_sigmas=False,
    use_beta_sigmas=False,
)

# The special tokens of Qwen2.5-VL's tokenizer that the prompt template and the model config use.
_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
             "<|video_pad|>")


# Words of diffusers' Qwen-Image prompt template and a few prompt words: each becomes one merged token (others fall
# back to shorter pieces and bytes), so the template encodes to tens of tokens, not hundreds of bytes.
_WORDS = ("system", "user", "assistant", "Describe", "the", "image", "by", "detailing", "color", "shape", "size",
          "texture", "quantity", "text", "spatial", "relationships", "of", "objects", "and", "background", "a",
          "photo", "cat", "dog", "red", "blue", "green", "house", "tree")


def make_qwen_tokenizer(model_max_length: int = 2048):
    """An offline ``Qwen2Tokenizer`` (byte-level BPE, as Qwen2.5-VL's): the 256 byte symbols, the template's words
    (with and without the leading-space marker) as merged tokens, and the special tokens above.  Any text
    tokenizes (unknown words fall back to bytes)."""
    from transformers import Qwen2Tokenizer

    from ..tiny import _bytes_to_unicode

    syms = _bytes_to_unicode()
    byte = {b: syms[b] for b in range(256)}
    vocab: dict[str, int] = {s: i for i, s in enumerate(syms)}
    merges: list[tuple[str, str]] = []
    for word in _WORDS:
        for form in (word, " " + word):
            pieces = [byte[b] for b in form.encode("utf-8")]
            cur = pieces[0]
            for p in pieces[1:]:
                if cur + p not in vocab:
                    merges.append((cur, p))
                    vocab[cur + p] = len(vocab)
                cur = cur + p
    for s in _SPECIALS:
        vocab[s] = len(vocab)
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token="<|endoftext|>", eos_token="<|endoftext|>",
                         pad_token="<|endoftext|>", model_max_length=model_max_length)
    tok.add_special_tokens({"additional_special_tokens": list(_SPECIALS[1:])})
    return tok


@register
class QwenImageBackbone(FlowBackbone):
    arch = "qwenimage"
    label = "Qwen-Image"
    order = 50
    pipeline_classes = ("QwenImagePipeline", "QwenImageImg2ImgPipeline", "QwenImageInpaintPipeline")
    model_classes = ("QwenImageTransformer2DModel",)
    subfolders = ("transformer", "vae", "text_encoder", "tokenizer", "scheduler")
    packed = True
    linspace_sigmas_default = True
    cfg_batch = False  # true CFG: the negative prompt is a second call
    default_guidance = 4.0  # diffusers' true_cfg_scale default

    @classmethod
    def build_tiny(cls, inpaint: bool = False, prediction_type: str = "epsilon"):
        """``QwenImagePipeline``: a 2-layer Qwen2.5-VL text encoder of width 32 (a 1-block vision tower, unused),
        a 2-layer transformer over 2×2-packed 16-channel latents, the Wan-style VAE with a frame axis, VAE factor 4
        (a 64×64 image is a 16×16 latent), Qwen-Image's per-channel latent mean/std and scheduler config."""
        from diffusers import (AutoencoderKLQwenImage, FlowMatchEulerDiscreteScheduler, QwenImagePipeline,
                               QwenImageTransformer2DModel)
        from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

        tokenizer = make_qwen_tokenizer()
        ids = tokenizer.convert_tokens_to_ids
        width = 32
        config = Qwen2_5_VLConfig(
            text_config=dict(vocab_size=len(tokenizer), hidden_size=width, intermediate_size=2 * width,
                             num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                             max_position_embeddings=4096, rope_theta=1e6,
                             rope_scaling={"mrope_section": [2, 3, 3], "rope_type": "default", "type": "default"},
                             bos_token_id=ids("<|endoftext|>"), eos_token_id=ids("<|endoftext|>"),
                             pad_token_id=ids("<|endoftext|>")),
            vision_config=dict(depth=1, hidden_size=16, intermediate_size=16, num_heads=2, out_hidden_size=width,
                               fullatt_block_indexes=[0]),
            image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
            vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
        )
        text_encoder = Qwen2_5_VLForConditionalGeneration(config)
        transformer = QwenImageTransformer2DModel(
            patch_size=2, in_channels=4 * 16, out_channels=16, num_layers=2, attention_head_dim=16,
            num_attention_heads=2, joint_attention_dim=width, axes_dims_rope=(4, 6, 6),  # sums to the head dim
        )
        vae = AutoencoderKLQwenImage(base_dim=16, z_dim=16, dim_mult=[1, 2, 4], num_res_blocks=1,
                                     temperal_downsample=[False, True])  # Qwen-Image's latents_mean / std
        scheduler = FlowMatchEulerDiscreteScheduler.from_config(dict(QWENIMAGE_SCHEDULER_CONFIG))
        return QwenImagePipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                 transformer=transformer)

    # ------------------------------------------------------------------ VAE (a frame axis, per-channel stats)
    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.z_dim)

    def _stats(self, like: Tensor) -> tuple[Tensor, Tensor]:
        c = self.vae.config
        mean = torch.tensor(c.latents_mean).view(1, c.z_dim, 1, 1).to(like.device, like.dtype)
        std = torch.tensor(c.latents_std).view(1, c.z_dim, 1, 1).to(like.device, like.dtype)
        return mean, std

    @torch.no_grad()
    def encode_image(self, image: Tensor, generator: torch.Generator | None = None, sample: bool = False) -> Tensor:
        vae = self.vae
        with vae_precision(vae) as dt:
            dist = vae.encode(image.to(device=self.device, dtype=dt).unsqueeze(2)).latent_dist
            z = (dist.sample(generator=generator) if sample else dist.mean)[:, :, 0]
        mean, std = self._stats(z)
        return (z - mean) / std

    @torch.no_grad()
    def decode_latents(self, latents: Tensor) -> Tensor:
        vae = self.vae
        with vae_precision(vae) as dt:
            z = latents.to(device=self.device, dtype=dt)
            mean, std = self._stats(z)
            return vae.decode((z * std + mean).unsqueeze(2)).sample[:, :, 0].float().clamp(-1, 1)

    @torch.no_grad()
    def latent_std(self, image: Tensor) -> Tensor:
        vae = self.vae
        dist = vae.encode(image.to(device=vae.device, dtype=vae.dtype).unsqueeze(2)).latent_dist
        s = dist.std.float()[:, :, 0]
        return s / self._stats(s)[1]

    # ------------------------------------------------------------------ text
    @torch.no_grad()
    def encode_prompt(self, prompt: str, negative: str | None = "") -> tuple[Cond, Cond | None]:
        """(cond, uncond) from the Qwen2.5-VL encoder through the pipeline's template; the token mask is None where
        every token counts (as diffusers returns it)."""
        def one(text: str) -> Cond:
            emb, mask = self.pipe.encode_prompt(prompt=text, device=self.device, num_images_per_prompt=1)
            return Cond(emb, mask=mask)

        return one(prompt), (None if negative is None else one(negative))

    # ------------------------------------------------------------------ denoiser
    def forward(self, x, t, cond, guidance=None, attn=None):
        b, _, h, w = x.shape
        if h % 2 or w % 2:
            raise SdImageError(f"{self.label} needs an even latent size (image sides multiple of "
                               f"{self.image_multiple}); got a {h}x{w} latent")
        tin = labels(t, b, x.device, x.dtype, float(self.pipe.scheduler.config.num_train_timesteps))
        out = self.denoiser(hidden_states=pack2x2(x), timestep=tin, encoder_hidden_states=cond.embeds,
                            encoder_hidden_states_mask=cond.mask, img_shapes=[[(1, h // 2, w // 2)]] * b,
                            attention_kwargs=None if attn is None else dict(attn), return_dict=False)[0]
        return unpack2x2(out, h, w)

    def combine(self, uncond: Tensor, cond: Tensor, g: float) -> Tensor:
        """True CFG with the per-token norm rescale: u + g (c − u), scaled per packed token to ‖c‖."""
        h, w = cond.shape[-2:]
        u, c = pack2x2(uncond), pack2x2(cond)
        comb = u + g * (c - u)
        comb = comb * (torch.norm(c, dim=-1, keepdim=True) / torch.norm(comb, dim=-1, keepdim=True))
        return unpack2x2(comb, h, w)

    def reference_kwargs(self, latent_hw, guidance) -> dict[str, Any]:
        h, w = (int(v) * self.vae_factor for v in latent_hw)
        return {"true_cfg_scale": guidance, "negative_prompt": "", "height": h, "width": w}

    def reference_latents(self, out, latent_hw):
        return unpack2x2(out, *latent_hw)
