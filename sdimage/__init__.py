"""Stable Diffusion plumbing and editing tasks on the shared ``diffsamplers`` (ODE vs SDE; Nie et al., ICLR 2024).

Heavy imports (diffusers, transformers) happen inside the functions that need them.
"""
from .errors import SdImageError

__all__ = ["SdImageError"]
