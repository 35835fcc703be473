"""ODE/SDE hybrids of the drag: per-step η schedules through ``diffsamplers.recipes.drag(..., sampler="sde",
eta=[η_0, …, η_{N−1}])`` (index k = backward step from t0, k = 0 the noisiest).  Steps with η_k = 0 are DDIM
inversion / DDIM steps, steps with η_k > 0 the Markov forward kernel and Cycle-SDE replay at that η, so η ≡ 0 is
ODE-Drag and η ≡ 1 SDE-Drag (tested).  No sampler code here: only the schedules and the method names.

Methods (names start with ``hybrid``):

- ``hybrid-late``: SDE only late — η = 1 on the last ``1 − switch`` of the decoding steps (near t = 0), 0 before;
- ``hybrid-early``: SDE only early — η = 1 on the first ``switch`` of the steps (near t0), 0 after;
- ``hybrid-eta0.25`` / ``hybrid-eta0.5``: η = 0.25 / 0.5 at every step.
"""
from __future__ import annotations

__all__ = ["BASE_METHODS", "HYBRIDS", "METHOD_NAMES", "eta_schedule", "method_kwargs", "check_methods"]

BASE_METHODS: tuple[str, ...] = ("ODE", "SDE")
HYBRIDS: tuple[str, ...] = ("hybrid-late", "hybrid-early", "hybrid-eta0.25", "hybrid-eta0.5")
METHOD_NAMES: tuple[str, ...] = BASE_METHODS + HYBRIDS


def eta_schedule(name: str, num_steps: int, switch: float = 0.5) -> list[float]:
    """The per-step η of hybrid ``name`` on a decoding pass of ``num_steps`` steps (k = 0 at t0).  ``switch``:
    the fraction of the steps (from t0) after which ``hybrid-late`` turns the SDE on / ``hybrid-early`` off."""
    if num_steps < 1:
        raise ValueError(f"need >= 1 decoding step, got {num_steps}")
    if not 0.0 < float(switch) < 1.0:
        raise ValueError(f"switch must be in (0, 1), got {switch}")
    k_switch = int(round(float(switch) * num_steps))
    if name == "hybrid-late":
        return [0.0 if k < k_switch else 1.0 for k in range(num_steps)]
    if name == "hybrid-early":
        return [1.0 if k < k_switch else 0.0 for k in range(num_steps)]
    if name.startswith("hybrid-eta"):
        try:
            eta = float(name[len("hybrid-eta"):])
        except ValueError:
            raise ValueError(f"unknown hybrid {name!r}; choose from {HYBRIDS}") from None
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"hybrid η must be in [0, 1], got {eta}")
        return [eta] * num_steps
    raise ValueError(f"unknown hybrid {name!r}; choose from {HYBRIDS}")


def method_kwargs(name: str, num_steps: int, switch: float = 0.5) -> dict:
    """Keyword arguments of ``recipes.drag`` for method ``name`` (``"ODE"``, ``"SDE"`` or a hybrid)."""
    if name == "ODE":
        return {"sampler": "ode"}
    if name == "SDE":
        return {"sampler": "sde"}
    return {"sampler": "sde", "eta": eta_schedule(name, num_steps, switch)}


def check_methods(methods) -> tuple[str, ...]:
    """Validated method tuple: distinct names, ODE and SDE first (every comparison is paired against them)."""
    methods = tuple(methods)
    if len(set(methods)) < len(methods) or methods[:2] != BASE_METHODS:
        raise ValueError(f"methods must start with {list(BASE_METHODS)} and be distinct, got {list(methods)}")
    for m in methods[2:]:
        eta_schedule(m, 2)
    return methods
