"""Single update rules between two noise levels (t -> s, s less noisy), each one closed-form.

Notation: x_t = alpha_t x_0 + sigma_t eps.  For Stable Diffusion alpha_t = sqrt(abar_t), sigma_t = sqrt(1 - abar_t);
the general (alpha, sigma) form also covers VE schedules (alpha = 1).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable, NamedTuple, Sequence, Union

from torch import Tensor

if TYPE_CHECKING:
    from .grid import Grid

__all__ = [
    "Prediction",
    "ModelOutput",
    "as_eps",
    "split_prediction",
    "flow_prediction",
    "predict_x0",
    "eps_from_v",
    "eps_from_x0",
    "eps_from_score",
    "ddim_sigma",
    "ddim_step",
    "ddim_noise_for_target",
    "forward_step",
    "posterior_step",
    "dpmpp_step",
    "dpmpp_noise_for_target",
    "dpmpp_lambda",
    "SOLVERS",
    "check_solver",
    "step_parts",
]

SOLVERS: tuple[str, ...] = ("ddim", "dpmpp")


def _f(v: Tensor | float) -> float:
    return float(v)


class Prediction(NamedTuple):
    """A model output carrying both ε̂ and x̂_0.  A model may return it instead of ε; it is needed where α_t = 0
    (a rectified flow's first level σ = 1), since there x̂_0 = (x_t − σ_t ε̂)/α_t cannot be had from ε̂."""

    eps: Tensor
    x0: Tensor


ModelOutput = Union[Tensor, Prediction]


def as_eps(out: ModelOutput) -> Tensor:
    """The ε̂ of a model output (a plain tensor is ε̂)."""
    return out.eps if isinstance(out, Prediction) else out


def split_prediction(out: ModelOutput, x: Tensor, alpha: float, sigma: float) -> tuple[Tensor, Tensor]:
    """(ε̂, x̂_0) of a model output at x = x_t: a :class:`Prediction` as given, a tensor ε̂ with x̂_0 by Tweedie."""
    if isinstance(out, Prediction):
        return out.eps, out.x0
    if _f(alpha) == 0.0:
        raise ValueError("alpha = 0 (a flow's sigma = 1): x0 cannot be predicted from eps; the model must return a "
                         "Prediction(eps, x0) there (see diffsamplers.flow_prediction)")
    return out, predict_x0(x, out, alpha, sigma)


def flow_prediction(x: Tensor, v: Tensor, sigma: float) -> Prediction:
    """x̂_0 = x − σ v, ε̂ = x + (1 − σ) v for a velocity v = ε − x_0 on the rectified flow x_t = (1 − σ) x_0 + σ ε."""
    s = _f(sigma)
    return Prediction(x + (1.0 - s) * v, x - s * v)


def predict_x0(x: Tensor, eps: Tensor, alpha: float, sigma: float) -> Tensor:
    """x̂_0 = (x_t − σ_t ε) / α_t (Tweedie / DDIM Eq. 12)."""
    return (x - _f(sigma) * eps) / _f(alpha)


def eps_from_x0(x: Tensor, x0: Tensor, alpha: float, sigma: float) -> Tensor:
    """ε = (x_t − α_t x̂_0) / σ_t."""
    return (x - _f(alpha) * x0) / _f(sigma)


def eps_from_v(x: Tensor, v: Tensor, alpha: float, sigma: float) -> Tensor:
    """ε = (σ x + α v) / (α² + σ²) for v = α ε − σ x_0 (Salimans & Ho 2022)."""
    a, s = _f(alpha), _f(sigma)
    return (s * x + a * v) / (a * a + s * s)


def eps_from_score(score: Tensor, sigma: float) -> Tensor:
    """ε(x, t) = −σ_t ∇log p_t(x)."""
    return -_f(sigma) * score


def ddim_sigma(alpha_t: float, sigma_t: float, alpha_s: float, sigma_s: float, eta: float) -> float:
    """σ_{t→s} = min(η σ_s √(1 − (α_t σ_s / (α_s σ_t))²), σ_s) (paper Eq. 6; VP form η√((1−ᾱ_s)/(1−ᾱ_t))√(1−ᾱ_t/ᾱ_s)).

    η = 1 is the Markov posterior of the path; η = ∞ the fully re-noising step x_s = α_s x̂_0 + σ_s w (diffusers'
    ``FlowMatchEulerDiscreteScheduler(stochastic_sampling=True)``); the cap σ_s keeps any η ≥ 0 a valid step."""
    a_t, s_t, a_s, s_s = _f(alpha_t), _f(sigma_t), _f(alpha_s), _f(sigma_s)
    if eta == 0.0 or s_s == 0.0:
        return 0.0
    ratio = (a_t * s_s) / (a_s * s_t)
    root = math.sqrt(max(1.0 - ratio * ratio, 0.0))
    if math.isinf(eta):
        return s_s if root > 0.0 else 0.0
    return min(float(eta) * s_s * root, s_s)


def _ddim_mean(
    x: Tensor, out: ModelOutput, alpha_t: float, sigma_t: float, alpha_s: float, sigma_s: float, eta: float
) -> tuple[Tensor, float]:
    """The deterministic part α_s x̂_0 + √(σ_s² − σ_{t→s}²) ε of Eq. 6 and the noise scale σ_{t→s}."""
    c = ddim_sigma(alpha_t, sigma_t, alpha_s, sigma_s, eta)
    eps, x0 = split_prediction(out, x, alpha_t, sigma_t)
    return _f(alpha_s) * x0 + math.sqrt(max(_f(sigma_s) ** 2 - c * c, 0.0)) * eps, c


def ddim_step(
    x: Tensor,
    eps: ModelOutput,
    alpha_t: float,
    sigma_t: float,
    alpha_s: float,
    sigma_s: float,
    eta: float = 0.0,
    noise: Tensor | None = None,
) -> Tensor:
    """x_s = α_s x̂_0 + √(σ_s² − σ_{t→s}²) ε + σ_{t→s} w (paper Eq. 6; η = 0 DDIM/ODE, η = 1 DDPM/SDE)."""
    out, c = _ddim_mean(x, eps, alpha_t, sigma_t, alpha_s, sigma_s, eta)
    if c > 0.0:
        if noise is None:
            raise ValueError("eta > 0 needs a noise tensor")
        out = out + c * noise
    return out


def ddim_noise_for_target(
    x: Tensor,
    eps: ModelOutput,
    x_s: Tensor,
    alpha_t: float,
    sigma_t: float,
    alpha_s: float,
    sigma_s: float,
    eta: float = 1.0,
) -> Tensor:
    """The w that makes ``ddim_step(x, eps, ..., eta, w)`` land on ``x_s`` (Eq. 6 solved for w; Cycle-SDE Eq. 8)."""
    mean, c = _ddim_mean(x, eps, alpha_t, sigma_t, alpha_s, sigma_s, eta)
    if c <= 0.0:
        raise ValueError("cannot solve for the noise of a deterministic step (eta = 0 or sigma_s = 0)")
    return (x_s - mean) / c


def forward_step(x_s: Tensor, alpha_s: float, sigma_s: float, alpha_t: float, sigma_t: float, noise: Tensor) -> Tensor:
    """Markov forward kernel x_t = (α_t/α_s) x_s + √(σ_t² − (α_t/α_s)² σ_s²) z (paper Eq. 7; VP: √(ᾱ_t/ᾱ_s), √(1−ᾱ_t/ᾱ_s))."""
    r = _f(alpha_t) / _f(alpha_s)
    var = _f(sigma_t) ** 2 - (r * _f(sigma_s)) ** 2
    return r * x_s + math.sqrt(max(var, 0.0)) * noise


def posterior_step(
    x_t: Tensor, x0: Tensor, alpha_t: float, sigma_t: float, alpha_s: float, sigma_s: float, noise: Tensor
) -> Tensor:
    """Sample q(x_s | x_t, x_0) of the Markov forward chain (DDPM posterior; CycleDiffusion's encoder).

    It is the η = 1 step of Eq. 6 with the true ε = (x_t − α_t x_0)/σ_t in place of the model's.
    """
    eps = eps_from_x0(x_t, x0, alpha_t, sigma_t)
    return ddim_step(x_t, Prediction(eps, x0), alpha_t, sigma_t, alpha_s, sigma_s, eta=1.0, noise=noise)


def _lam(alpha: float, sigma: float) -> float:
    if sigma <= 0:
        return math.inf
    return math.log(alpha) - math.log(sigma) if alpha > 0 else -math.inf


def _dpmpp_parts(
    x: Tensor, x0: Tensor, alpha_t: float, sigma_t: float, alpha_s: float, sigma_s: float,
    x0_prev: Tensor | None, lambda_prev: float | None, sde: bool,
) -> tuple[Tensor, float]:
    """(mean, noise scale c) of the DPM-Solver++ step: x_s = mean + c·w (c = 0 for the ODE and onto σ = 0)."""
    a_t, s_t, a_s, s_s = _f(alpha_t), _f(sigma_t), _f(alpha_s), _f(sigma_s)
    if s_s == 0.0:
        return x0, 0.0  # the last step to sigma = 0 returns the data prediction
    lam_t, lam_s = _lam(a_t, s_t), _lam(a_s, s_s)
    h = lam_s - lam_t
    d = x0
    if x0_prev is not None and lambda_prev is not None:
        r = (lam_t - lambda_prev) / h
        d = x0 + (x0 - x0_prev) / (2.0 * r)
    if not sde:
        return (s_s / s_t) * x - a_s * math.expm1(-h) * d, 0.0
    e2 = -math.expm1(-2.0 * h)
    return (s_s / s_t) * math.exp(-h) * x + a_s * e2 * d, s_s * math.sqrt(e2)


def dpmpp_step(
    x: Tensor,
    x0: Tensor,
    alpha_t: float,
    sigma_t: float,
    alpha_s: float,
    sigma_s: float,
    x0_prev: Tensor | None = None,
    lambda_prev: float | None = None,
    sde: bool = False,
    noise: Tensor | None = None,
) -> Tensor:
    """DPM-Solver++ (2M multistep, Lu et al. 2022) and its SDE variant (SDE-DPM-Solver++, Eq. of Lu et al. App. / Cheng 2023).

    ODE: x_s = (σ_s/σ_t) x − α_s (e^{−h} − 1) D;  SDE: x_s = (σ_s/σ_t) e^{−h} x + α_s (1 − e^{−2h}) D + σ_s √(1 − e^{−2h}) w,
    with h = λ_s − λ_t, λ = log(α/σ), D = x̂_0 (order 1) or x̂_0 + (x̂_0 − x̂_0^prev)/(2r), r = h_prev/h (order 2).
    Run with σ increasing (h < 0) it is the inversion step of diffusers' ``DPMSolverMultistepInverseScheduler``.
    """
    mean, c = _dpmpp_parts(x, x0, alpha_t, sigma_t, alpha_s, sigma_s, x0_prev, lambda_prev, sde)
    if not sde or c == 0.0:
        return mean
    if noise is None:
        raise ValueError("the SDE step needs a noise tensor")
    return mean + c * noise


def dpmpp_noise_for_target(
    x: Tensor,
    x0: Tensor,
    x_s: Tensor,
    alpha_t: float,
    sigma_t: float,
    alpha_s: float,
    sigma_s: float,
    x0_prev: Tensor | None = None,
    lambda_prev: float | None = None,
) -> Tensor:
    """The w that makes the SDE-DPM-Solver++ step from ``x`` land on ``x_s``: w = (x_s − mean)/c (Cycle-SDE, Eq. 8)."""
    mean, c = _dpmpp_parts(x, x0, alpha_t, sigma_t, alpha_s, sigma_s, x0_prev, lambda_prev, True)
    if c <= 0.0:
        raise ValueError("cannot solve for the noise of a deterministic step (sigma_s = 0)")
    return (x_s - mean) / c


def dpmpp_lambda(alpha: float, sigma: float) -> float:
    """λ = log(α/σ), the DPM-Solver time (−∞ at α = 0, +∞ at σ = 0)."""
    return _lam(_f(alpha), _f(sigma))


def check_solver(solver: str, order: int) -> None:
    """The one check of a solver name and order (``"ddim"``: order ignored; ``"dpmpp"``: 1 or 2)."""
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")


def step_parts(grid: "Grid", solver: str = "ddim", order: int = 1, eta: float | Sequence[float] = 1.0
               ) -> Callable[[int, Tensor, ModelOutput], tuple[Tensor, float]]:
    """A pass's step rule (i, x_t, model output) ↦ (m, c) with x_s = m + c·w: η-DDIM (paper Eq. 6) or
    DPM-Solver++ (Lu et al. 2022; ODE where η_i = 0, else SDE-DPM-Solver++), order 2 keeping this pass's x̂_0
    history (first and last steps order 1, as diffusers' ``DPMSolverMultistepScheduler``).  Call once per step, in order."""
    check_solver(solver, order)
    n = grid.num_steps
    etas = [float(eta)] * n if isinstance(eta, (int, float)) else [float(v) for v in eta]
    hist: dict = {"x0": None, "lam": None}

    def parts(i: int, x: Tensor, out: ModelOutput) -> tuple[Tensor, float]:
        a_t, s_t, a_s, s_s = grid.step(i)
        if solver == "ddim":
            return _ddim_mean(x, out, a_t, s_t, a_s, s_s, etas[i])
        _, x0 = split_prediction(out, x, a_t, s_t)
        use2 = order == 2 and hist["x0"] is not None and i < n - 1
        res = _dpmpp_parts(x, x0, a_t, s_t, a_s, s_s, hist["x0"] if use2 else None, hist["lam"] if use2 else None,
                           etas[i] > 0)
        hist["x0"], hist["lam"] = x0, dpmpp_lambda(a_t, s_t)
        return res

    return parts
