"""Result objects: what a test and a calibration return, and how they are saved.

A result is self-describing: t and its parts, degrees of freedom, the fitted
functions (parameters plus the model description, so they can be evaluated on any
grid), the training history, the seed, the configuration and the package versions.
Scalars and configuration go to JSON, arrays to a compressed ``.npz`` next to it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from symnplm.engine.models import MLP, BinwiseFunction
from symnplm.inference.significance import Chi2Fit, asymptotic_pvalue, asymptotic_z
from symnplm.io.files import read_json, write_json, write_npz

__all__ = [
    "RESULT_ARRAYS",
    "RESULT_JSON",
    "CalibrationResult",
    "NullDistribution",
    "TestResult",
    "model_from_description",
]

RESULT_JSON = "result.json"
RESULT_ARRAYS = "arrays.npz"


def model_from_description(desc: dict[str, Any]) -> MLP | BinwiseFunction:
    """Rebuild a model from its ``describe()`` dictionary."""
    family = desc.get("family")
    if family == "mlp":
        return MLP(tuple(desc["architecture"]), desc.get("activation", "sigmoid"))
    if family == "binwise":
        return BinwiseFunction(tuple(desc["edges"]))
    raise ValueError(f"unknown model family {family!r} in result description")


@dataclass
class TestResult:
    """The observed value of a two-sample test statistic.

    Attributes
    ----------
    statistic
        ``"nplm"``, ``"symmetrized"``, ``"crossentropy"`` or ``"binned-<statistic>"``.
    t
        The test statistic (``inf`` for a diverged NPLM fit).
    parts
        Components, e.g. ``{"t_A": ..., "t_B": ...}`` for t_{A+B}(A) and t_{A+B}(B).
    dof
        Asymptotic χ² degrees of freedom.
    functions
        Fitted functions: name -> list of parameter arrays (one replica).
    log_ratio
        How the estimate of log(n_A(x)/n_B(x)) is built from ``functions``:
        ``{"terms": [[coef, name], ...], "constant": c}``.
    model
        Description of the function family (rebuilt by :func:`model_from_description`).
    history_steps, history
        Recorded epochs/iterations and t (and parts) at those steps.
    """

    statistic: str
    t: float
    parts: dict[str, float]
    dof: int
    n_parameters: int
    diverged: bool
    converged: bool
    functions: dict[str, list[np.ndarray]]
    log_ratio: dict[str, Any]
    model: dict[str, Any]
    history_steps: np.ndarray
    history: dict[str, np.ndarray]
    samples: dict[str, Any]
    seed: int
    config: dict[str, Any]
    provenance: dict[str, Any]
    seconds: float

    __test__ = False  # not a pytest class, despite the name

    # -- derived -----------------------------------------------------------------------
    @property
    def p_asymptotic(self) -> float:
        """P(χ²_dof ≥ t)."""
        return float(asymptotic_pvalue(self.t, self.dof))

    @property
    def z_asymptotic(self) -> float:
        """Z of the asymptotic p-value (log-space, accurate in the tails)."""
        return float(asymptotic_z(self.t, self.dof))

    def evaluate(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Fitted functions and log(n_A/n_B) at points ``x`` (``(M,)`` or ``(M, d)``).

        Returns a dict with one array per fitted function plus ``"log_ratio"``, the
        estimate of log(n_A(x)/n_B(x)) (δ of the paper up to factor and constant).
        """
        model = model_from_description(self.model)
        points = np.asarray(x, dtype=np.float64)
        if points.ndim == 1:
            points = points[:, None]
        if points.shape[1] != model.input_dim:
            raise ValueError(
                f"evaluation points have {points.shape[1]} features, the fit used {model.input_dim}"
            )
        xt = torch.as_tensor(points)
        out: dict[str, np.ndarray] = {}
        with torch.no_grad():
            for name, params in self.functions.items():
                ps = [torch.as_tensor(np.asarray(p, dtype=np.float64))[None] for p in params]
                out[name] = model.forward(ps, xt)[0].numpy()
        ratio = np.full(points.shape[0], float(self.log_ratio.get("constant", 0.0)))
        for coef, name in self.log_ratio.get("terms", []):
            ratio = ratio + float(coef) * out[name]
        out["log_ratio"] = ratio
        return out

    # -- serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (arrays excluded; see :meth:`save`)."""
        return {
            "statistic": self.statistic,
            "t": self.t,
            "parts": self.parts,
            "dof": self.dof,
            "p_asymptotic": self.p_asymptotic,
            "z_asymptotic": self.z_asymptotic,
            "n_parameters": self.n_parameters,
            "diverged": self.diverged,
            "converged": self.converged,
            "log_ratio": self.log_ratio,
            "model": self.model,
            "samples": self.samples,
            "seed": self.seed,
            "config": self.config,
            "provenance": self.provenance,
            "seconds": self.seconds,
        }

    def arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Arrays to store: fitted parameters and history."""
        out = {f"{prefix}history_steps": np.asarray(self.history_steps)}
        for key, val in self.history.items():
            out[f"{prefix}history_{key}"] = np.asarray(val)
        for name, params in self.functions.items():
            for k, p in enumerate(params):
                out[f"{prefix}param_{name}_{k}"] = np.asarray(p)
        return out

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``result.json`` and ``arrays.npz`` into ``directory`` (atomically each)."""
        directory = Path(directory)
        write_npz(directory / RESULT_ARRAYS, **self.arrays())
        write_json(directory / RESULT_JSON, {"kind": "test", **self.to_dict()})
        return directory

    @classmethod
    def from_parts(cls, meta: dict[str, Any], arrays: Any, prefix: str = "") -> TestResult:
        """Rebuild from a JSON dict and an npz mapping."""
        functions: dict[str, list[tuple[int, np.ndarray]]] = {}
        hist: dict[str, np.ndarray] = {}
        for key in arrays.files if hasattr(arrays, "files") else arrays:
            if not key.startswith(prefix):
                continue
            k = key[len(prefix) :]
            if k.startswith("param_"):
                name, idx = k[len("param_") :].rsplit("_", 1)
                functions.setdefault(name, []).append((int(idx), np.asarray(arrays[key])))
            elif k.startswith("history_") and k != "history_steps":
                hist[k[len("history_") :]] = np.asarray(arrays[key])
        funcs = {n: [a for _, a in sorted(v, key=lambda p: p[0])] for n, v in functions.items()}
        return cls(
            statistic=meta["statistic"],
            t=float(meta["t"]),
            parts={k: float(v) for k, v in meta["parts"].items()},
            dof=int(meta["dof"]),
            n_parameters=int(meta["n_parameters"]),
            diverged=bool(meta["diverged"]),
            converged=bool(meta["converged"]),
            functions=funcs,
            log_ratio=meta["log_ratio"],
            model=meta["model"],
            history_steps=np.asarray(arrays[f"{prefix}history_steps"]),
            history=hist,
            samples=meta["samples"],
            seed=int(meta["seed"]),
            config=meta["config"],
            provenance=meta["provenance"],
            seconds=float(meta["seconds"]),
        )

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> TestResult:
        """Read a result written by :meth:`save`."""
        directory = Path(directory)
        meta = read_json(directory / RESULT_JSON)
        if meta.get("kind") != "test":
            raise ValueError(
                f"{directory / RESULT_JSON}: not a test result (kind={meta.get('kind')!r})"
            )
        with np.load(directory / RESULT_ARRAYS) as arrays:
            return cls.from_parts(meta, arrays)


@dataclass
class NullDistribution:
    """Test statistic values under the null hypothesis (permutations or toys).

    ``t`` is +inf for diverged fits; ``history_t`` (steps × replicas) allows the
    percentiles-vs-epochs study of Fig. 7.
    """

    method: str
    t: np.ndarray
    diverged: np.ndarray
    converged: np.ndarray
    seed: int
    replica_ids: np.ndarray
    history_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    history_t: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    parts: dict[str, np.ndarray] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def __len__(self) -> int:
        return int(self.t.size)

    @property
    def divergent_fraction(self) -> float:
        """Fraction of replicas whose fit diverged (t = +inf)."""
        return float(np.mean(self.diverged)) if self.t.size else 0.0

    @staticmethod
    def concatenate(parts: list[NullDistribution]) -> NullDistribution:
        """Join batches of the same campaign (ordered by replica id)."""
        if not parts:
            raise ValueError("nothing to concatenate")
        first = parts[0]
        ids = np.concatenate([p.replica_ids for p in parts])
        order = np.argsort(ids, kind="stable")
        same_steps = all(np.array_equal(p.history_steps, first.history_steps) for p in parts)
        hist = (
            np.concatenate([p.history_t for p in parts], axis=1)[:, order]
            if same_steps
            else np.zeros((0, 0))
        )
        return NullDistribution(
            method=first.method,
            t=np.concatenate([p.t for p in parts])[order],
            diverged=np.concatenate([p.diverged for p in parts])[order],
            converged=np.concatenate([p.converged for p in parts])[order],
            seed=first.seed,
            replica_ids=ids[order],
            history_steps=first.history_steps if same_steps else np.zeros(0, dtype=np.int64),
            history_t=hist,
            parts={k: np.concatenate([p.parts[k] for p in parts])[order] for k in first.parts},
            config=first.config,
            seconds=float(sum(p.seconds for p in parts)),
        )

    def arrays(self, prefix: str = "null_") -> dict[str, np.ndarray]:
        """Arrays to store."""
        out = {
            f"{prefix}t": self.t,
            f"{prefix}diverged": self.diverged,
            f"{prefix}converged": self.converged,
            f"{prefix}replica_ids": self.replica_ids,
            f"{prefix}history_steps": self.history_steps,
            f"{prefix}history_t": self.history_t,
        }
        out.update({f"{prefix}part_{k}": v for k, v in self.parts.items()})
        return out

    def summary(self) -> dict[str, Any]:
        """JSON-able summary."""
        finite = self.t[np.isfinite(self.t)]
        return {
            "method": self.method,
            "n": len(self),
            "seed": self.seed,
            "divergent_fraction": self.divergent_fraction,
            "median": float(np.median(finite)) if finite.size else None,
            "mean": float(finite.mean()) if finite.size else None,
            "config": self.config,
            "seconds": self.seconds,
        }

    @classmethod
    def from_arrays(
        cls, meta: dict[str, Any], arrays: Any, prefix: str = "null_"
    ) -> NullDistribution:
        """Rebuild from the JSON summary and stored arrays."""
        keys = arrays.files if hasattr(arrays, "files") else list(arrays)
        parts = {
            k[len(prefix) + 5 :]: np.asarray(arrays[k])
            for k in keys
            if k.startswith(prefix + "part_")
        }
        return cls(
            method=meta["method"],
            t=np.asarray(arrays[prefix + "t"]),
            diverged=np.asarray(arrays[prefix + "diverged"]),
            converged=np.asarray(arrays[prefix + "converged"]),
            seed=int(meta["seed"]),
            replica_ids=np.asarray(arrays[prefix + "replica_ids"]),
            history_steps=np.asarray(arrays[prefix + "history_steps"]),
            history_t=np.asarray(arrays[prefix + "history_t"]),
            parts=parts,
            config=meta.get("config", {}),
            seconds=float(meta.get("seconds", 0.0)),
        )


@dataclass
class CalibrationResult:
    """An observed test statistic with its p-value and significance.

    ``method`` is ``"asymptotic"`` (χ² with the test's dof), ``"permutations"`` or
    ``"toys"`` (empirical p = (1 + #{t_null ≥ t_obs}) / (n + 1)). The asymptotic
    p and Z are always reported alongside, and, with a null sample, a χ² fit of
    its degrees of freedom.
    """

    observed: TestResult
    method: str
    p_value: float
    z: float
    null: NullDistribution | None = None
    chi2_fit: Chi2Fit | None = None

    @property
    def t(self) -> float:
        """Observed t."""
        return self.observed.t

    @property
    def dof(self) -> int:
        """Asymptotic degrees of freedom of the statistic."""
        return self.observed.dof

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        return {
            "kind": "calibration",
            "method": self.method,
            "t": self.t,
            "dof": self.dof,
            "p_value": self.p_value,
            "z": self.z,
            "p_asymptotic": self.observed.p_asymptotic,
            "z_asymptotic": self.observed.z_asymptotic,
            "chi2_fit": self.chi2_fit.to_dict() if self.chi2_fit else None,
            "null": self.null.summary() if self.null is not None else None,
            "observed": self.observed.to_dict(),
        }

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``result.json`` and ``arrays.npz`` into ``directory``."""
        directory = Path(directory)
        arrays = self.observed.arrays(prefix="observed_")
        if self.null is not None:
            arrays.update(self.null.arrays())
        write_npz(directory / RESULT_ARRAYS, **arrays)
        write_json(directory / RESULT_JSON, self.to_dict())
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> CalibrationResult:
        """Read a calibration written by :meth:`save`."""
        directory = Path(directory)
        meta = read_json(directory / RESULT_JSON)
        if meta.get("kind") != "calibration":
            raise ValueError(
                f"{directory / RESULT_JSON}: not a calibration result (kind={meta.get('kind')!r})"
            )
        with np.load(directory / RESULT_ARRAYS) as arrays:
            observed = TestResult.from_parts(meta["observed"], arrays, prefix="observed_")
            null = NullDistribution.from_arrays(meta["null"], arrays) if meta.get("null") else None
        chi2 = Chi2Fit(**meta["chi2_fit"]) if meta.get("chi2_fit") else None
        return cls(observed, meta["method"], float(meta["p_value"]), float(meta["z"]), null, chi2)
