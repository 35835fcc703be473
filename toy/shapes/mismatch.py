"""The theorem's quantity along every drag: −log p_t(x_t) of the decoding chain under the family's exact mixture.

Nie et al.'s Theorem 3.1: after an edit at t0 the SDE shrinks KL(q_t‖p_t) by ∫½g²F while the ODE keeps it.  Per
task there is one chain, so the recorded quantity is its negative log-likelihood under the exact marginal p_t:
right after the paste at t0 (where the mismatch is created) and after every decoding step (``on_step`` of
``diffsamplers.recipes.drag``: ``on_step(op, -1, x)`` after operation op's paste, ``on_step(op, i, x)`` after
decoding step i, mask reset included).

- :class:`NllRecorder`: the ``on_step`` callback of one batched drag call; per task ``nll_t0`` (first operation,
  right after the paste on the input), ``nll_t0_last`` (the last operation's paste) and ``path`` (the last
  operation's chain, one value per decoding step; its last value is −log p_0 of the output, the reported NLL);
- :func:`data_reference`: the median −log p_t of draws of p_t at each level (the data's typical value; "excess" =
  chain − reference);
- :func:`path_summary`: mean and 95% interval per step over tasks; :func:`correlation`: Pearson's r with its
  Fisher-z 95% interval (and Spearman's ρ) of the SDE's final advantage against the mismatch at t0.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["NllRecorder", "data_reference", "path_summary", "correlation", "level_after"]


def level_after(grid, i: int) -> tuple[float, float]:
    """(α, σ) of the level decoding step i lands on (i = −1: the start, t0)."""
    if i < 0:
        return float(grid.alphas[0]), float(grid.sigmas[0])
    _, _, a, s = grid.step(i)
    return float(a), float(s)


class NllRecorder:
    """``on_step`` callback: −log p_t(x) under ``mixture`` at the level of each decoding step of ``grid``."""

    def __init__(self, mixture, grid, n_rows: int) -> None:
        self.mixture, self.grid = mixture, grid
        n = grid.num_steps
        self.levels = [level_after(grid, i) for i in range(-1, n)]
        self.t0: dict[int, np.ndarray] = {}
        self.paths: dict[int, np.ndarray] = {}
        self.n_rows, self.n_steps = n_rows, n

    def __call__(self, op: int, i: int, x: Tensor) -> None:
        a, s = self.levels[i + 1]
        v = (-self.mixture.log_prob(x.reshape(x.shape[0], -1).to(torch.float64), a, s)).numpy()
        if i < 0:
            self.t0[op] = v
            self.paths[op] = np.full((self.n_steps, self.n_rows), np.nan)
        else:
            self.paths[op][i] = v

    @property
    def nll_t0(self) -> np.ndarray:
        return self.t0[min(self.t0)]

    @property
    def nll_t0_last(self) -> np.ndarray:
        return self.t0[max(self.t0)]

    @property
    def path(self) -> np.ndarray:
        """[n_steps, n_rows]: the last operation's chain."""
        return self.paths[max(self.paths)]


@torch.no_grad()
def data_reference(mixture, grid, n: int = 64, seed: int = 5) -> np.ndarray:
    """Median −log p_t of ``n`` draws of p_t (seeded) at t0 and after every decoding step: [n_steps + 1]."""
    out = []
    for i in range(-1, grid.num_steps):
        a, s = level_after(grid, i)
        x = mixture.sample(n, torch.Generator().manual_seed(seed + i + 1), a, s).to(torch.float64)
        out.append(float(np.median((-mixture.log_prob(x, a, s)).numpy())))
    return np.array(out)


def path_summary(paths: dict, reference: np.ndarray, timesteps) -> dict:
    """``paths``: method → [n_steps, n_tasks]; per method the mean / 95% interval per step (normal approximation
    over tasks), and the data reference at each step's level."""
    out = {"timesteps": [int(t) for t in timesteps], "data_median_t0": float(reference[0]),
           "data_median": [float(v) for v in reference[1:]], "methods": {}}
    for m, p in paths.items():
        p = np.asarray(p, dtype=np.float64)
        n = p.shape[1]
        mean = p.mean(1)
        half = 1.96 * p.std(1, ddof=1) / math.sqrt(n) if n > 1 else np.full(len(mean), np.nan)
        out["methods"][m] = {"mean": mean.tolist(), "ci95": half.tolist(), "lo95": (mean - half).tolist(),
                             "hi95": (mean + half).tolist(), "n": int(n)}
    return out


def correlation(x, y) -> dict:
    """Pearson's r of (x, y) with its Fisher-z 95% interval, Spearman's ρ, n; NaN where undefined (n < 4 or a
    constant series)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = len(x)
    nan = {"pearson_r": float("nan"), "lo95": float("nan"), "hi95": float("nan"), "spearman_rho": float("nan"),
           "n": int(n)}
    if n < 4 or np.std(x) == 0 or np.std(y) == 0:
        return nan
    r = float(np.corrcoef(x, y)[0, 1])
    z, h = math.atanh(max(min(r, 1 - 1e-12), -1 + 1e-12)), 1.96 / math.sqrt(n - 3)
    rx, ry = _ranks(x), _ranks(y)
    rho = float(np.corrcoef(rx, ry)[0, 1]) if np.std(rx) > 0 and np.std(ry) > 0 else float("nan")
    return {"pearson_r": r, "lo95": math.tanh(z - h), "hi95": math.tanh(z + h), "spearman_rho": rho, "n": int(n)}


def _ranks(v: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank)."""
    order = np.argsort(v, kind="mergesort")
    ranks = np.empty(len(v))
    ranks[order] = np.arange(len(v), dtype=np.float64)
    for val in np.unique(v):
        idx = v == val
        if idx.sum() > 1:
            ranks[idx] = ranks[idx].mean()
    return ranks
