"""Exact and numerical verification of the SDE-vs-ODE KL theorem (Nie et al., ICLR 2024, Thms 3.1/3.2)."""
from .errors import ConfigError
from .mixtures import GaussianMixture, gaussian, mixture_from_dict
from .schedules import VE, DiscreteDDPM, RectifiedFlow, VPCosine, VPLinear, schedule_from_dict
from .verify import verify

__all__ = ["ConfigError", "GaussianMixture", "gaussian", "mixture_from_dict", "VE", "DiscreteDDPM", "RectifiedFlow",
           "VPCosine", "VPLinear", "schedule_from_dict", "verify"]
