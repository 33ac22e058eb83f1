"""Learning δ_k(x) of r(x; ν) = exp(Σ_k δ_k(x) ν^k) from nominal and varied samples.

arXiv:2111.13633 ("Taylor's expansion learning"): a parametrised classifier is trained on
the nominal sample S_1 and the samples S_0(ν_i) simulated at nuisance values ν_i,
with the quadratic loss of arXiv:2007.10356,

    L[δ] = Σ_{ν_i} [ Σ_{e ∈ S_0(ν_i)} w_e c(x_e; ν_i)²  +  Σ_{e ∈ S_1} w_e (1 - c(x_e; ν_i))² ],
    c(x; ν) = 1 / (1 + r̂(x; ν)).

Point by point the minimum is c = n_1 / (n_0 + n_1), i.e. r̂ = n(x|R_ν) / n(x|R_0):
S_0(ν_i) is the *varied* sample and S_1 the nominal one (2007.10356 labels the
θ ≠ 0 sample "0"). The weights are the expected yields, so a change of the total
rate is learned too. Each δ_k is a small network (:class:`symnplm.engine.MLP`);
the K networks of one nuisance are fitted jointly by the engine's optimisers
(:func:`symnplm.engine.fit`, damped Newton by default), U initialisations at once
as U units of one batched program.

Expansion order
---------------
K = 2 by default (arXiv:2111.13633: exp[δ_1 ν + δ_2 ν²]). The exponential keeps r > 0, and
for a momentum scale acting on a steeply falling spectrum log r is close to
quadratic in ν over |ν| ≤ 2 (the cubic term of the scaled exponential of
:mod:`.toys` is σ³ν³x/6, 10⁻³ for σ = 5 %, ν = 2). Order K needs at least K
distinct ν values; use ± pairs so that even and odd orders separate.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from symnplm.engine import MLP, FitConfig, fit
from symnplm.engine.objectives import Model, _widest
from symnplm.io.files import read_json, write_json
from symnplm.io.provenance import provenance
from symnplm.io.samples import Sample, load_sample

__all__ = [
    "ACCUMULATE",
    "DEFAULT_DELTA_FIT",
    "DeltaObjective",
    "LearnedNuisance",
    "VariationSet",
    "learn_deltas",
    "variation_set_from_processor",
]

ACCUMULATE = torch.float64

#: Newton in double precision with the Gauss–Newton curvature: the quadratic loss is
#: not convex in log r̂ (ℓ'' < 0 where c > 2/3), and its positive-definite Gauss–Newton
#: form converges in a few tens of iterations where the exact Hessian needs > 100 on
#: the toys of ``tests/systematics`` (to a loss lower only by sample noise).
DEFAULT_DELTA_FIT = FitConfig(
    optimizer="newton", dtype="float64", max_iter=300, ftol=1e-6, hessian="gauss-newton"
)


# ---------------------------------------------------------------------------------------
# input: nominal + varied samples of one nuisance source
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VariationSet:
    """The nominal sample and the samples varied by one nuisance source.

    Parameters
    ----------
    source
        Nuisance name, e.g. ``"muon_scale"``.
    nominal
        Sample at ν = 0, weighted to its expected yield.
    varied
        ν (in standard deviations, non-zero) -> sample at that ν, same features,
        weighted to its expected yield.
    max_yield_ratio
        A varied sample whose total weight differs from the nominal one by more than
        this factor is taken as inconsistent (a different dataset, luminosity or
        normalisation convention), not as a systematic variation.

    Raises
    ------
    ValueError
        No variation, ν = 0 or non-finite, features differing from the nominal
        sample's, or an inconsistent yield; the message names the variation.
    """

    source: str
    nominal: Sample
    varied: Mapping[float, Sample]
    max_yield_ratio: float = 3.0

    def __post_init__(self) -> None:
        if not self.varied:
            raise ValueError(f"source {self.source!r}: no varied sample (need ν ≠ 0 samples)")
        varied = {}
        for nu, s in self.varied.items():
            label = _label(self.source, nu)
            if not np.isfinite(nu) or nu == 0:
                raise ValueError(
                    f"{label}: ν must be finite and non-zero (ν = 0 is the nominal sample)"
                )
            if s.names != self.nominal.names:
                raise ValueError(
                    f"{label} ({s.name!r}) has features {list(s.names)}, the nominal sample "
                    f"{self.nominal.name!r} has {list(self.nominal.names)}"
                )
            ratio = s.sum_weights / self.nominal.sum_weights
            if not (1 / self.max_yield_ratio <= ratio <= self.max_yield_ratio):
                raise ValueError(
                    f"{label} ({s.name!r}) has total weight {s.sum_weights:.6g}, "
                    f"{ratio:.3g} × the nominal {self.nominal.sum_weights:.6g}: "
                    "inconsistent samples (different dataset or normalisation?)"
                )
            varied[float(nu)] = s
        object.__setattr__(self, "varied", dict(sorted(varied.items())))

    @property
    def nu_values(self) -> tuple[float, ...]:
        """The ν of the varied samples, sorted."""
        return tuple(self.varied)

    @property
    def features(self) -> tuple[str, ...]:
        """Feature names."""
        return self.nominal.names

    def describe(self) -> dict[str, Any]:
        """Sources, ν values, sizes and yields."""
        return {
            "source": self.source,
            "features": list(self.features),
            "nominal": {"name": self.nominal.name, "sum_weights": self.nominal.sum_weights},
            "varied": {
                str(nu): {"name": s.name, "n_events": len(s), "sum_weights": s.sum_weights}
                for nu, s in self.varied.items()
            },
        }


def _label(source: str, nu: float) -> str:
    return f"variation {source!r} at ν = {nu:+g}"


def variation_set_from_processor(
    outdir: str | os.PathLike[str],
    dataset: str,
    category: str,
    source: str,
    features: Sequence[str],
    sigmas: Sequence[float] = (1.0,),
    **kwargs: Any,
) -> VariationSet:
    """Load ``nominal`` and ``<source>_up<k>`` / ``<source>_down<k>`` from processor output.

    Parameters
    ----------
    outdir, dataset, category
        As for :func:`symnplm.io.samples.load_sample`.
    source
        Variation source, e.g. ``"muon_scale"`` or ``"electron_scale"``.
    features
        Feature columns, in order.
    sigmas
        The k of the ±k σ variations to use.
    **kwargs
        Passed to :class:`VariationSet` (``max_yield_ratio``).

    Raises
    ------
    KeyError
        A variation sample is missing; the message names it and what the output has.
    """
    from symnplm.physics.variations import variation_name

    nominal = load_sample(outdir, dataset, category, "nominal", features)
    varied = {}
    for k in sigmas:
        for nu in (float(k), -float(k)):
            name = variation_name(source, nu)
            try:
                varied[nu] = load_sample(outdir, dataset, category, name, features)
            except KeyError as err:
                raise KeyError(
                    f"variation sample {name!r} of source {source!r} (ν = {nu:+g}) is missing "
                    f"for {dataset}/{category}: {err.args[0]}"
                ) from None
    return VariationSet(source, nominal, varied, **kwargs)


# ---------------------------------------------------------------------------------------
# the objective: quadratic loss of 2007.10356 for K networks δ_1 … δ_K
# ---------------------------------------------------------------------------------------
def _quadratic_terms(
    s: torch.Tensor, w_var: torch.Tensor, w_nom: torch.Tensor, exact: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-event loss, first and second derivative in s = log r̂.

    With c = σ(-s): the varied term w c² has derivative -2w c²(1-c) and second
    derivative 2w c²(1-c)(2-3c); the nominal term w(1-c)² is the same with c → 1-c
    and s → -s. ``exact=False`` gives the Gauss–Newton curvature 2w c²(1-c)² ≥ 0.
    """
    c = torch.sigmoid(-s)
    u = 1 - c
    loss = w_var * c * c + w_nom * u * u
    d1 = -2 * w_var * c * c * u + 2 * w_nom * u * u * c
    if exact:
        d2 = 2 * w_var * c * c * u * (2 - 3 * c) + 2 * w_nom * u * u * c * (2 - 3 * u)
    else:
        d2 = 2 * (w_var + w_nom) * (c * u) ** 2
    return loss, d1, d2


@dataclass
class DeltaObjective:
    """Quadratic parametrised-classifier loss of arXiv:2111.13633 for δ_1 … δ_K (K networks).

    Events are shared by all units (U initialisations). Parameters of a unit are
    the K networks' tensors, δ_1's first.

    Parameters
    ----------
    model
        The function family of each δ_k (one output).
    order
        K.
    x
        Events ``(N, d)``: the nominal sample followed by the varied ones.
    nu
        ``(M,)`` ν of the M varied samples.
    weight_varied
        ``(M, N)``: weight of each event in varied sample m (zero elsewhere).
    weight_nominal
        ``(N,)``: weight in the nominal sample (zero on varied events).
    n_units
        Number of independent fits U.
    """

    model: Model
    order: int
    x: torch.Tensor
    nu: torch.Tensor
    weight_varied: torch.Tensor
    weight_nominal: torch.Tensor
    n_units: int = 1

    def __post_init__(self) -> None:
        self.n_events = int(self.x.shape[-2])
        k = torch.arange(1, self.order + 1, dtype=self.nu.dtype, device=self.nu.device)
        self.powers = self.nu[:, None] ** k[None, :]  # (M, K): ν_m^k

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """K copies of the model's shapes."""
        return self.model.shapes * self.order

    @property
    def width(self) -> int:
        """K networks × M variations are evaluated per event."""
        return self.order * _widest(self.model) + int(self.nu.shape[0])

    def split(self, params: list[torch.Tensor]) -> list[list[torch.Tensor]]:
        """Parameters of δ_1 … δ_K."""
        n = len(self.model.shapes)
        return [list(params[k * n : (k + 1) * n]) for k in range(self.order)]

    def _log_r(self, deltas: list[torch.Tensor]) -> torch.Tensor:
        """s_m = Σ_k ν_m^k δ_k, ``(u, M, n)``."""
        return torch.einsum("mk,kun->umn", self.powers.to(deltas[0].dtype), torch.stack(deltas))

    def _weights(self, events: slice) -> tuple[torch.Tensor, torch.Tensor]:
        return self.weight_varied[:, events][None], self.weight_nominal[events][None, None, :]

    def loss(
        self, params: list[torch.Tensor], units: torch.Tensor | None, events: slice
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss per unit (bounded below by 0, so the max-f diagnostic is -inf)."""
        x = self.x[events]
        deltas = [self.model.forward(p, x) for p in self.split(params)]
        w_var, w_nom = self._weights(events)
        terms, _, _ = _quadratic_terms(self._log_r(deltas), w_var, w_nom, exact=False)
        loss = terms.sum(dim=(1, 2), dtype=ACCUMULATE)
        return loss, torch.full_like(loss, -torch.inf)

    def newton_terms(
        self,
        params: list[torch.Tensor],
        units: torch.Tensor | None,
        events: slice,
        exact: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss, -inf, gradient and Hessian in (θ_1, …, θ_K).

        ∂s_m/∂θ_k = ν_m^k J_k, so block (k, l) of the Gauss–Newton Hessian is
        J_kᵀ diag(Σ_m ℓ''_m ν_m^{k+l}) J_l, and the exact one adds Σ_m ℓ'_m ν_m^k ∇²δ_k
        on the diagonal blocks.
        """
        x = self.x[events]
        split = self.split(params)
        outs = [self.model.jacobian(p, x) for p in split]
        deltas = [o[0] for o in outs]
        jacs = [o[1] for o in outs]
        w_var, w_nom = self._weights(events)
        terms, d1, d2 = _quadratic_terms(self._log_r(deltas), w_var, w_nom, exact)
        loss = terms.sum(dim=(1, 2), dtype=ACCUMULATE)
        pw = self.powers.to(d1.dtype)
        r = [torch.einsum("m,umn->un", pw[:, k], d1) for k in range(self.order)]
        grads, rows = [], []
        for k in range(self.order):
            grads.append(torch.bmm(r[k].unsqueeze(1), jacs[k]).squeeze(1).to(torch.float64))
            row = []
            for m in range(self.order):
                q = torch.einsum("m,umn->un", pw[:, k] * pw[:, m], d2)
                block = torch.bmm(jacs[k].transpose(1, 2), q.unsqueeze(-1) * jacs[m])
                if exact and k == m:
                    curv = self.model.curvature(split[k], x, r[k])
                    if curv is None:
                        raise ValueError(
                            f"no analytic curvature for {self.model.describe()}; "
                            "use hessian='gauss-newton'"
                        )
                    block = block + curv
                row.append(block.to(torch.float64))
            rows.append(torch.cat(row, dim=2))
        grad = torch.cat(grads, dim=1)
        hess = torch.cat(rows, dim=1)
        return loss, torch.full_like(loss, -torch.inf), grad, hess

    def clip_(self, params: list[torch.Tensor], bound: float, clip_biases: bool) -> None:
        """Clip every network."""
        for p in self.split(params):
            self.model.clip_(p, bound, clip_biases)

    def floor(self) -> torch.Tensor:
        """The quadratic loss is non-negative."""
        return torch.zeros(self.n_units, dtype=torch.float64)


# ---------------------------------------------------------------------------------------
# the learned nuisance
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LearnedNuisance:
    """A shape nuisance whose δ_1(x) … δ_K(x) were learned by :func:`learn_deltas`.

    Attributes
    ----------
    name
        Nuisance (source) name.
    model
        Function family of each δ_k.
    params
        ``params[k]``: parameter arrays of δ_{k+1} (one network, no replica axis).
    features
        Feature names the networks take, in order.
    training
        Loss, convergence, seeds, configuration and provenance of the fit.
    """

    name: str
    model: MLP
    params: tuple[tuple[np.ndarray, ...], ...]
    features: tuple[str, ...]
    training: dict[str, Any] = field(default_factory=dict)

    @property
    def order(self) -> int:
        """K."""
        return len(self.params)

    def coefficients(self, x: np.ndarray) -> np.ndarray:
        """δ_1(x) … δ_K(x), ``(K, N)``, evaluated in float64."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        if x.shape[1] != self.model.input_dim:
            raise ValueError(
                f"nuisance {self.name!r} was learned on {self.model.input_dim} feature(s) "
                f"{list(self.features)}, got events with {x.shape[1]}"
            )
        xt = torch.as_tensor(x, dtype=torch.float64)
        with torch.no_grad():
            return np.stack(
                [
                    self.model.forward([torch.as_tensor(p[None]) for p in pk], xt)[0].numpy()
                    for pk in self.params
                ]
            )

    def log_ratio(self, x: np.ndarray, nu: float) -> np.ndarray:
        """log r̂(x; ν) = Σ_k δ_k(x) ν^k."""
        c = self.coefficients(x)
        return np.einsum("k,kn->n", float(nu) ** np.arange(1, self.order + 1), c)

    def describe(self) -> dict[str, Any]:
        """JSON-able description (parameters included, so it can be rebuilt)."""
        return {
            "kind": "learned",
            "name": self.name,
            "model": self.model.describe(),
            "features": list(self.features),
            "params": [[p.tolist() for p in pk] for pk in self.params],
            "training": self.training,
        }

    @classmethod
    def from_description(cls, desc: Mapping[str, Any]) -> LearnedNuisance:
        """Rebuild from :meth:`describe` (e.g. read back from JSON)."""
        if desc.get("kind") != "learned":
            raise ValueError(f"not a learned nuisance description: kind={desc.get('kind')!r}")
        model_desc = desc["model"]
        if model_desc.get("family") != "mlp":
            raise ValueError(f"nuisance {desc.get('name')!r}: unknown model {model_desc}")
        model = MLP(tuple(model_desc["architecture"]), model_desc.get("activation", "sigmoid"))
        params = tuple(
            tuple(np.asarray(p, dtype=np.float64).reshape(s) for p, s in zip(pk, model.shapes))
            for pk in desc["params"]
        )
        training = dict(desc.get("training", {}))
        return cls(desc["name"], model, params, tuple(desc["features"]), training)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`describe` as JSON (atomically)."""
        return write_json(path, self.describe())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LearnedNuisance:
        """Read a nuisance written by :meth:`save`."""
        return cls.from_description(read_json(path))


def learn_deltas(
    variations: VariationSet,
    *,
    order: int = 2,
    architecture: Sequence[int] | None = None,
    activation: str = "sigmoid",
    fit_config: FitConfig | None = None,
    seed: int = 0,
    n_init: int = 1,
) -> LearnedNuisance:
    """Fit δ_1(x) … δ_K(x) of one nuisance source (quadratic loss of arXiv:2007.10356).

    Parameters
    ----------
    variations
        Nominal and varied samples of the source.
    order
        Expansion order K (see the module docstring).
    architecture
        Network of each δ_k; default ``(d, 4, 1)``.
    activation
        Hidden-layer activation.
    fit_config
        Optimiser settings (default :data:`DEFAULT_DELTA_FIT`: Newton, float64).
    seed
        Seed of the network initialisations.
    n_init
        Independent initialisations, fitted as units of one batched fit; the one with
        the lowest loss is kept.

    Returns
    -------
    LearnedNuisance

    Raises
    ------
    ValueError
        Fewer distinct ν values than the order, or a bad order / architecture.
    """
    if order < 1:
        raise ValueError(f"expansion order must be >= 1, got {order}")
    nus = variations.nu_values
    if len(nus) < order:
        raise ValueError(
            f"source {variations.source!r}: an order-{order} expansion needs at least {order} "
            f"distinct ν values, the varied samples have {list(nus)}"
        )
    d = len(variations.features)
    arch = tuple(architecture) if architecture is not None else (d, 4, 1)
    if arch[0] != d:
        raise ValueError(
            f"source {variations.source!r}: architecture {arch} takes {arch[0]} input(s), "
            f"the samples have {d} feature(s) {list(variations.features)}"
        )
    if n_init < 1:
        raise ValueError(f"n_init must be >= 1, got {n_init}")
    cfg = fit_config or DEFAULT_DELTA_FIT
    model = MLP(arch, activation)
    samples = [variations.nominal, *variations.varied.values()]
    x = np.concatenate([s.features for s in samples])
    offsets = np.cumsum([0] + [len(s) for s in samples])
    w_nom = np.zeros(len(x))
    w_nom[: offsets[1]] = variations.nominal.weights
    w_var = np.zeros((len(nus), len(x)))
    for m, s in enumerate(variations.varied.values()):
        w_var[m, offsets[m + 1] : offsets[m + 2]] = s.weights

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=cfg.torch_dtype, device=cfg.device)

    obj = DeltaObjective(
        model, order, tensor(x), tensor(np.asarray(nus)), tensor(w_var), tensor(w_nom), n_init
    )
    seeds = [
        int(np.random.SeedSequence(int(seed), spawn_key=(k, u)).generate_state(1)[0])
        for u in range(n_init)
        for k in range(order)
    ]
    # every δ_k starts at 0 (r̂ = 1, the nominal): the loss then starts where no
    # variation is modelled and only moves down.
    inits = [
        model.init(seeds[k::order], dtype=cfg.torch_dtype, device=cfg.device, zero_output=True)
        for k in range(order)
    ]
    res = fit(obj, [p for init in inits for p in init], cfg)
    if res.diverged.all():
        raise RuntimeError(f"source {variations.source!r}: every δ fit diverged")
    loss = np.where(res.diverged, np.inf, res.loss)
    best = int(np.argmin(loss))
    params = obj.split([p[best] for p in res.params])
    training = {
        "loss": float(res.loss[best]),
        "losses": res.loss.tolist(),
        "converged": bool(res.converged[best]),
        "steps": int(res.steps[best]),
        "seed": int(seed),
        "n_init": int(n_init),
        "order": int(order),
        "variations": variations.describe(),
        "fit": cfg.to_dict(),
        "seconds": res.seconds,
        "provenance": provenance(),
    }
    return LearnedNuisance(
        name=variations.source,
        model=model,
        params=tuple(tuple(p.numpy().astype(np.float64) for p in pk) for pk in params),
        features=variations.features,
        training=training,
    )
