"""Two-object scenes: a disc and a square in one image, and their exact mixture (the ``pair`` task family).

Every scene holds one object of each of two kinds (default a disc and a square, half-size 3), each centred on the
stride-1 lattice of :class:`~toy.shapes.data.ShapeConfig`, with at least ``gap`` empty pixels between their boxes
(so their supports are disjoint and every scene is an exact rendering).  The data distribution is again an
isotropic Gaussian mixture, one component per scene, equal weights, covariance s² I (s = 0.08).  It has ~10⁵
components, but its means are sums ``bg + a_i + b_j`` of one rendered object per kind (a_i, b_j: rendering minus
background, disjoint supports), so the log-likelihood of x_t under component (i, j) splits into ``l_a[i] + l_b[j]``
and every closed form is a bilinear form over the [K_a, K_b] table of allowed pairs (:class:`PairMixture`):
log p_t = log(e_aᵀ M e_b) + ..., the posterior marginals of each object are e_a ⊙ (M e_b) / Z and
e_b ⊙ (Mᵀ e_a) / Z, and ε = σ (x − α E[x_0 | x_t]) / (α² s² + σ²) with E[x_0 | x_t] = bg + r_a A + r_b B.
Cost per call: two [B, d] × [d, K] products and one [B, K_a] × [K_a, K_b] product (float64); rows whose bilinear
form underflows (far from every allowed scene, at tiny noise) fall back to the dense [K_a, K_b] log-sum-exp.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from ..digits.mixture import MixtureConfig
from .data import KINDS, SceneGeometry, ShapeConfig, render

__all__ = ["PairConfig", "PairMixture", "PairSet", "build_pairs", "boxes_apart"]

LOG2PI = math.log(2.0 * math.pi)


@dataclass
class PairConfig:
    """Two-object scenes: the two kinds (one object of each per scene), their half-sizes, the lattice (as
    :class:`ShapeConfig`), the least number of empty pixels between the two boxes, the component width."""

    side: int = 32
    kinds: tuple = ("disc", "square")
    sizes: tuple = (3,)
    lattice_step: int = 1
    border: int = 6
    gap: int = 1                     # empty pixels at least between the two objects' boxes (rows or columns)
    foreground: float = 1.0
    background: float = -1.0
    supersample: int = 4
    iso_std: float = field(default_factory=lambda: MixtureConfig().iso_std)

    def __post_init__(self) -> None:
        self.kinds, self.sizes = tuple(self.kinds), tuple(int(s) for s in self.sizes)
        if len(self.kinds) != 2 or self.kinds[0] == self.kinds[1] or any(k not in KINDS for k in self.kinds):
            raise ValueError(f"a pair scene needs two different kinds from {KINDS}, got {self.kinds}")
        if self.gap < 1:
            raise ValueError(f"gap must be >= 1 (disjoint supports), got {self.gap}")
        self.shape_config()                                   # validates sizes, lattice, border, iso_std

    def shape_config(self) -> ShapeConfig:
        """The one-object rendering / lattice settings of both kinds."""
        return ShapeConfig(side=self.side, kinds=self.kinds, sizes=self.sizes, lattice_step=self.lattice_step,
                           border=self.border, foreground=self.foreground, background=self.background,
                           supersample=self.supersample, iso_std=self.iso_std)

    def reach(self, kind: str, size: int) -> tuple[int, int]:
        return self.shape_config().reach(kind, size)

    def centres(self) -> list[int]:
        return self.shape_config().centres()

    def to_dict(self) -> dict:
        return asdict(self)


def boxes_apart(c1, r1, c2, r2) -> Tensor:
    """Empty pixels between the boxes centre ± reach (inclusive) along the more separated axis; negative when they
    overlap.  Broadcasts over tensors of centres [..., 2]."""
    c1, c2 = torch.as_tensor(c1), torch.as_tensor(c2)
    r1, r2 = torch.as_tensor(r1), torch.as_tensor(r2)
    per_axis = (c1 - c2).abs() - r1 - r2 - 1                  # empty rows / columns between the boxes
    return per_axis.max(dim=-1).values


class PairMixture:
    """Equal-weight isotropic mixture over the allowed scenes ``bg + A[i] + B[j]`` (``allowed[i, j]``); the
    methods take x [N, d] (or [N, ...]); computations in float64, results in the mixture's dtype label."""

    def __init__(self, a: Tensor, b: Tensor, allowed: Tensor, background: float, iso_var: float,
                 dtype: torch.dtype = torch.float64) -> None:
        self.a, self.b = a.to(torch.float64), b.to(torch.float64)
        self.allowed = allowed.to(torch.bool)
        self.m = self.allowed.to(torch.float64)
        self.background = float(background)
        self.iso_var = float(iso_var)
        self._dtype = dtype
        self.pairs = self.allowed.nonzero()                                    # [N, 2] (i, j)
        self.a_sq, self.b_sq = (self.a ** 2).sum(-1), (self.b ** 2).sum(-1)
        overlap = (self.a != 0).to(torch.float64) @ (self.b != 0).to(torch.float64).T      # shared support pixels
        if bool((overlap[self.allowed] > 0).any()):
            raise ValueError("allowed pairs must have disjoint supports")

    # --- bookkeeping ---------------------------------------------------------------------------------------------
    @property
    def num_components(self) -> int:
        return int(self.pairs.shape[0])

    @property
    def dim(self) -> int:
        return int(self.a.shape[1])

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    def to(self, dtype: torch.dtype | None = None, device=None) -> "PairMixture":
        out = object.__new__(PairMixture)
        out.__dict__.update(self.__dict__)
        out._dtype = dtype or self._dtype
        return out

    def flat(self, i: Tensor, j: Tensor) -> Tensor:
        """Component id of pair (i, j): i · K_b + j."""
        return i * self.b.shape[0] + j

    def means_of(self, k) -> Tensor:
        """The scenes (component means) [len(k), d] of component ids ``k`` (flat i · K_b + j)."""
        k = torch.as_tensor(k, dtype=torch.long).reshape(-1)
        i, j = k // self.b.shape[0], k % self.b.shape[0]
        return self.background + self.a[i] + self.b[j]

    # --- closed forms ------------------------------------------------------------------------------------------------
    def _halves(self, x: Tensor, alpha: float, sigma: float):
        xf = x.reshape(x.shape[0], -1).to(torch.float64)
        c = alpha * alpha * self.iso_var + sigma * sigma
        y = xf - alpha * self.background
        la = (2 * alpha * (y @ self.a.T) - alpha * alpha * self.a_sq) / (2 * c)   # [N, K_a]
        lb = (2 * alpha * (y @ self.b.T) - alpha * alpha * self.b_sq) / (2 * c)   # [N, K_b]
        base = -(y * y).sum(-1) / (2 * c) - 0.5 * self.dim * (math.log(c) + LOG2PI) - math.log(self.num_components)
        return xf, c, la, lb, base

    def _dense(self, la: Tensor, lb: Tensor) -> Tensor:
        return (la[:, :, None] + lb[:, None, :]).masked_fill(~self.allowed, float("-inf"))

    def _posterior(self, la: Tensor, lb: Tensor):
        """log Z (log-sum-exp of l_a[i] + l_b[j] over allowed pairs) and the marginals r_a [N, K_a], r_b [N, K_b]."""
        ma, mb = la.max(-1, keepdim=True).values, lb.max(-1, keepdim=True).values
        ea, eb = torch.exp(la - ma), torch.exp(lb - mb)
        fa, fb = eb @ self.m.T, ea @ self.m                                     # [N, K_a], [N, K_b]
        z = (ea * fa).sum(-1)
        log_z = torch.log(z) + ma[:, 0] + mb[:, 0]
        ra, rb = ea * fa / z[:, None], eb * fb / z[:, None]
        for n in (~(z > 1e-250)).nonzero()[:, 0].tolist():                  # underflow: exact log-sum-exp
            log_z[n], ra[n], rb[n] = self._row_lse(la[n], lb[n])
        return log_z, ra, rb

    def _row_lse(self, la: Tensor, lb: Tensor, top: int = 64, cut: float = 800.0):
        """Log-sum-exp and marginals of one row, summing only the pairs within ``cut`` nats of the best allowed
        pair among the ``top`` × ``top`` best objects (every other pair adds < e^−cut of the total)."""
        ka, kb = la.topk(min(top, len(la))).indices, lb.topk(min(top, len(lb))).indices
        sub = (la[ka][:, None] + lb[kb][None, :]).masked_fill(~self.allowed[ka][:, kb], float("-inf"))
        best = sub.max()
        if not torch.isfinite(best):                                          # no allowed pair up there: all of them
            best = self._dense(la[None], lb[None]).max()
        i = (la + lb.max() >= best - cut).nonzero()[:, 0]
        j = (lb + la.max() >= best - cut).nonzero()[:, 0]
        d = (la[i][:, None] + lb[j][None, :]).masked_fill(~self.allowed[i][:, j], float("-inf"))
        lz = torch.logsumexp(d.reshape(-1), 0)
        p = torch.exp(d - lz)
        ra, rb = torch.zeros_like(la), torch.zeros_like(lb)
        ra[i], rb[j] = p.sum(1), p.sum(0)
        return lz, ra, rb

    def log_prob(self, x: Tensor, alpha: float = 1.0, sigma: float = 0.0) -> Tensor:
        """log p_t(x), shape [N]."""
        dt = x.dtype
        _, _, la, lb, base = self._halves(x, float(alpha), float(sigma))
        log_z, _, _ = self._posterior(la, lb)
        return (base + log_z).to(dt)

    def x0_mean(self, x: Tensor, alpha: float, sigma: float) -> Tensor:
        """E[x_0 | x_t] (rows [N, d], float64)."""
        _, _, la, lb, _ = self._halves(x, float(alpha), float(sigma))
        _, ra, rb = self._posterior(la, lb)
        return self.background + ra @ self.a + rb @ self.b

    def score(self, x: Tensor, alpha: float = 1.0, sigma: float = 0.0) -> Tensor:
        shape, dt = x.shape, x.dtype
        xf, c, la, lb, _ = self._halves(x, float(alpha), float(sigma))
        _, ra, rb = self._posterior(la, lb)
        mean = self.background + ra @ self.a + rb @ self.b
        return (-(xf - float(alpha) * mean) / c).reshape(shape).to(dt)

    def eps(self, x: Tensor, alpha: float, sigma: float) -> Tensor:
        """ε(x, t) = −σ ∇log p_t(x), same shape and dtype as x."""
        return (-float(sigma) * self.score(x.to(torch.float64), alpha, sigma)).reshape(x.shape).to(x.dtype)

    def best_component(self, x: Tensor, chunk: int = 8) -> Tensor:
        """The most responsible component id at t = 0 (nearest allowed scene), shape [N]."""
        xf = x.reshape(x.shape[0], -1)
        out = []
        for rows in torch.split(xf, chunk):
            _, _, la, lb, _ = self._halves(rows, 1.0, 0.0)
            d = self._dense(la, lb).reshape(rows.shape[0], -1)
            out.append(d.argmax(-1))
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)

    # --- sampling ----------------------------------------------------------------------------------------------------
    def sample(self, n: int, generator: torch.Generator, alpha: float = 1.0, sigma: float = 0.0,
               return_components: bool = False):
        """n draws of x_t = α x_0 + σ ε with x_0 ~ p_0 (float64 draws, cast to the dtype label)."""
        pick = torch.randint(self.num_components, (n,), generator=generator)
        i, j = self.pairs[pick, 0], self.pairs[pick, 1]
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        x = alpha * (self.background + self.a[i] + self.b[j] + math.sqrt(self.iso_var) * z)
        if sigma > 0:
            x = x + sigma * torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        x = x.to(self._dtype)
        return (x, self.flat(i, j)) if return_components else x


@dataclass
class PairSet(SceneGeometry):
    """The two-object data set: per kind slot the object renderings minus background ([K_a, d], [K_b, d]) with
    their (kind, size, cy, cx) keys, the allowed-pair table and the exact mixture.  Component / scene ids are
    i · K_b + j (:meth:`find`, :meth:`images_of`)."""

    config: PairConfig
    keys_a: list
    keys_b: list
    mixture: PairMixture
    index_a: dict
    index_b: dict

    def __len__(self) -> int:
        return self.mixture.num_components

    def find(self, first, second) -> int:
        """Scene id of (kind, size, centre) × (kind, size, centre) (either order); KeyError if not a data scene."""
        objs = {first[0]: first, second[0]: second}
        if set(objs) != set(self.config.kinds):
            raise KeyError(f"a scene holds one {self.config.kinds[0]} and one {self.config.kinds[1]}")
        ka, kb = ((kind, int(objs[kind][1]), *map(int, objs[kind][2])) for kind in self.config.kinds)
        if ka not in self.index_a or kb not in self.index_b:
            raise KeyError(f"{first} / {second} is not on the lattice of this data set")
        i, j = self.index_a[ka], self.index_b[kb]
        if not bool(self.mixture.allowed[i, j]):
            raise KeyError(f"{first} and {second} are closer than {self.config.gap} px: not a data scene")
        return int(self.mixture.flat(torch.tensor(i), torch.tensor(j)))

    def images_of(self, ids) -> Tensor:
        return self.mixture.means_of(ids)

    @property
    def images(self) -> Tensor:
        raise AttributeError("a PairSet has ~1e5 scenes and does not hold them; use images_of(ids)")

    def as_image(self, x: Tensor) -> Tensor:
        return x.reshape(*x.shape[:-1], self.side, self.side)

    def as_rows(self, x: Tensor) -> Tensor:
        return x.reshape(*x.shape[:-2], self.dim)


def build_pairs(cfg: PairConfig | None = None) -> PairSet:
    """Render each kind at every (size, lattice centre) and build the allowed-pair table and the mixture."""
    cfg = PairConfig() if cfg is None else cfg
    grid = cfg.centres()
    slots = []
    for kind in cfg.kinds:
        keys, imgs, reach = [], [], []
        for size, cy, cx in itertools.product(cfg.sizes, grid, grid):
            keys.append((kind, size, cy, cx))
            imgs.append(render(kind, size, (cy, cx), cfg.side, cfg.foreground, cfg.background, cfg.supersample)
                        - cfg.background)
            reach.append(cfg.reach(kind, size))
        slots.append((keys, torch.stack(imgs).reshape(len(imgs), -1), torch.tensor(reach)))
    (ka, a, ra), (kb, b, rb) = slots
    ca = torch.tensor([k[2:] for k in ka])
    cb = torch.tensor([k[2:] for k in kb])
    apart = boxes_apart(ca[:, None, :], ra[:, None, :], cb[None, :, :], rb[None, :, :])
    allowed = apart >= cfg.gap
    mix = PairMixture(a, b, allowed, cfg.background, cfg.iso_std ** 2)
    return PairSet(cfg, ka, kb, mix, {k: n for n, k in enumerate(ka)}, {k: n for n, k in enumerate(kb)})
