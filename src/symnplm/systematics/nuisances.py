"""Nuisance parameters as log-ratio expansions, and the set of them a test profiles.

The reference family of arXiv:2111.13633 (its model of systematic effects) is

    n(x|R_ν) = n(x|R_0) r(x; ν),    r(x; ν) = exp[δ_1(x) ν + δ_2(x) ν² + …],

one term per nuisance (independent nuisances, no cross terms ν_i ν_j — the
factorised approximation of the two-body study of arXiv:2111.13633, where each δ is learned
from variations of one source at a time). ν is measured in units of the
nuisance's standard deviation, as the variation samples are named
(``<source>_up1`` is ν = +1).

A nuisance here is anything with a ``name``, an expansion ``order`` K and
``coefficients(x) -> (K, N)`` array of δ_1(x) … δ_K(x); a :class:`NuisanceSet`
stacks them into the ``(J, K, N)`` array the fits use, with the Gaussian
auxiliary constraints (the auxiliary term of arXiv:2111.13633):

    2 log[L(ν|A) / L(0|A)] = Σ_j [ν̂_j² - (ν̂_j - ν_j)²] / σ_j².
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["AsymmetryNuisance", "NormalisationNuisance", "Nuisance", "NuisanceSet"]


@runtime_checkable
class Nuisance(Protocol):
    """What the nuisance-aware tests need from one nuisance parameter."""

    @property
    def name(self) -> str:
        """The nuisance's name (its source)."""

    @property
    def order(self) -> int:
        """Highest power of ν in log r."""

    def coefficients(self, x: np.ndarray) -> np.ndarray:
        """δ_1(x) … δ_K(x) at events ``x`` ``(N, d)``: an array ``(K, N)``."""

    def describe(self) -> dict[str, Any]:
        """JSON-able description."""


@dataclass(frozen=True)
class NormalisationNuisance:
    """Global normalisation: r(x; ν) = exp(σ_N ν), analytic (as in arXiv:2111.13633).

    Matches :class:`symnplm.physics.variations.Normalisation`: weights × exp(ν σ_N)
    with ν in standard deviations, so δ_1 = σ_N everywhere and δ_k>1 = 0.

    Parameters
    ----------
    name
        Nuisance name (e.g. ``"norm"``).
    sigma
        Relative size σ_N of one standard deviation (0.025 = 2.5 %).
    """

    name: str = "norm"
    sigma: float = 0.025

    def __post_init__(self) -> None:
        if not np.isfinite(self.sigma) or self.sigma == 0:
            raise ValueError(
                f"normalisation nuisance {self.name!r}: sigma must be finite and non-zero, "
                f"got {self.sigma}"
            )

    @property
    def order(self) -> int:
        """log r is linear in ν."""
        return 1

    def coefficients(self, x: np.ndarray) -> np.ndarray:
        """δ_1 = σ_N for every event."""
        n = np.asarray(x).shape[0]
        return np.full((1, n), float(self.sigma))

    def describe(self) -> dict[str, Any]:
        """JSON-able description."""
        return {"kind": "normalisation", "name": self.name, "sigma": float(self.sigma)}


@dataclass(frozen=True)
class AsymmetryNuisance:
    """A nuisance acting on the A/B ratio of a symmetrized test: log r_A - log r_B.

    In an ``emu`` vs ``mue`` comparison a detector effect (e/μ efficiency ratio,
    momentum scale) changes the two categories differently; only the change of
    log(n_A/n_B) enters the symmetrized likelihood (its common part is saturated by
    the A ∪ B reference, 2401.09530 Eq. 21). Either side may be absent (the
    effect acts on one category only).

    Parameters
    ----------
    name
        Nuisance name.
    on_a, on_b
        The nuisance's effect on sample A and on sample B (e.g. learned from each
        category's variation samples), or ``None``.
    """

    name: str
    on_a: Nuisance | None = None
    on_b: Nuisance | None = None

    def __post_init__(self) -> None:
        if self.on_a is None and self.on_b is None:
            raise ValueError(f"asymmetry nuisance {self.name!r} acts on neither A nor B")

    @property
    def order(self) -> int:
        """Highest order of either side."""
        return max(s.order for s in (self.on_a, self.on_b) if s is not None)

    def coefficients(self, x: np.ndarray) -> np.ndarray:
        """δ_k^A(x) - δ_k^B(x), zero-padded to the common order."""
        out = np.zeros((self.order, np.asarray(x).shape[0]))
        if self.on_a is not None:
            ca = self.on_a.coefficients(x)
            out[: ca.shape[0]] += ca
        if self.on_b is not None:
            cb = self.on_b.coefficients(x)
            out[: cb.shape[0]] -= cb
        return out

    def describe(self) -> dict[str, Any]:
        """JSON-able description."""
        return {
            "kind": "asymmetry",
            "name": self.name,
            "on_a": None if self.on_a is None else self.on_a.describe(),
            "on_b": None if self.on_b is None else self.on_b.describe(),
        }


@dataclass(frozen=True)
class NuisanceSet:
    """The nuisances a test profiles, with their Gaussian auxiliary constraints.

    Parameters
    ----------
    nuisances
        The nuisances (distinct names); may be empty (then the tests reduce to the
        nuisance-free statistics).
    sigma
        Prior widths σ_j in units of ν (default 1: ν is in standard deviations).
    aux
        Observed auxiliary measurements ν̂_j (default 0: the central values).
    features
        Feature names the coefficient functions expect (checked against the samples);
        empty = unchecked.
    """

    nuisances: tuple[Nuisance, ...] = ()
    sigma: tuple[float, ...] | None = None
    aux: tuple[float, ...] | None = None
    features: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        nuis = tuple(self.nuisances)
        for n in nuis:
            if not isinstance(n, Nuisance):
                raise TypeError(f"{n!r} is not a nuisance (needs name, order, coefficients)")
        names = [n.name for n in nuis]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"nuisance names must be distinct; repeated: {dup}")
        j = len(nuis)
        sigma = (1.0,) * j if self.sigma is None else tuple(float(s) for s in self.sigma)
        aux = (0.0,) * j if self.aux is None else tuple(float(a) for a in self.aux)
        for label, vals in (("sigma", sigma), ("aux", aux)):
            if len(vals) != j:
                raise ValueError(f"{label} has {len(vals)} values for {j} nuisances {names}")
        for name, s in zip(names, sigma):
            if not (np.isfinite(s) and s > 0):
                raise ValueError(f"nuisance {name!r}: prior sigma must be positive, got {s}")
        for name, a in zip(names, aux):
            if not np.isfinite(a):
                raise ValueError(f"nuisance {name!r}: auxiliary value must be finite, got {a}")
        object.__setattr__(self, "nuisances", nuis)
        object.__setattr__(self, "sigma", sigma)
        object.__setattr__(self, "aux", aux)
        object.__setattr__(self, "features", tuple(self.features))

    def __len__(self) -> int:
        return len(self.nuisances)

    @property
    def names(self) -> tuple[str, ...]:
        """Nuisance names, in order."""
        return tuple(n.name for n in self.nuisances)

    @property
    def order(self) -> int:
        """Highest expansion order K (0 for an empty set)."""
        return max((n.order for n in self.nuisances), default=0)

    def check_features(self, names: Sequence[str]) -> None:
        """Raise if the samples' features differ from those the δ functions were learned on."""
        if self.features and tuple(names) and tuple(names) != self.features:
            raise ValueError(
                f"the nuisances {list(self.names)} were learned on features "
                f"{list(self.features)}, the samples have {list(names)}"
            )

    def coefficients(self, x: np.ndarray) -> np.ndarray:
        """δ_{j,k}(x) for every nuisance j and order k: ``(J, K, N)`` (``(R, J, K, N)`` for
        per-replica events ``(R, N, d)``), zero-padded above each nuisance's order."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 3:
            r, n, d = x.shape
            flat = self.coefficients(x.reshape(r * n, d))
            return flat.reshape(flat.shape[0], flat.shape[1], r, n).transpose(2, 0, 1, 3)
        out = np.zeros((len(self), self.order, x.shape[0]))
        for j, nuis in enumerate(self.nuisances):
            c = np.asarray(nuis.coefficients(x), dtype=np.float64)
            if c.shape != (nuis.order, x.shape[0]):
                raise ValueError(
                    f"nuisance {nuis.name!r} returned coefficients of shape {c.shape}, "
                    f"expected {(nuis.order, x.shape[0])}"
                )
            if not np.all(np.isfinite(c)):
                raise ValueError(f"nuisance {nuis.name!r} has non-finite δ(x) on these events")
            out[j, : nuis.order] = c
        return out

    def log_ratio(self, x: np.ndarray, nu: Sequence[float]) -> np.ndarray:
        """log r(x; ν) = Σ_j Σ_k δ_{j,k}(x) ν_j^k at events ``x`` ``(N, d)``."""
        nu = np.asarray(nu, dtype=np.float64)
        if nu.shape != (len(self),):
            raise ValueError(f"need {len(self)} nuisance values {list(self.names)}, got {nu}")
        powers = nu[:, None] ** np.arange(1, self.order + 1)[None, :]
        return np.einsum("jk,jkn->n", powers, self.coefficients(x))

    def with_aux(self, aux: Sequence[float]) -> NuisanceSet:
        """The same nuisances with other auxiliary measurements ν̂."""
        return NuisanceSet(self.nuisances, self.sigma, tuple(aux), self.features)

    def describe(self) -> dict[str, Any]:
        """JSON-able description."""
        return {
            "nuisances": [n.describe() for n in self.nuisances],
            "sigma": list(self.sigma),
            "aux": list(self.aux),
            "features": list(self.features),
        }
