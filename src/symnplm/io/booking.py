"""Book a test result into ``hist`` objects and write / read result directories.

The histograms of a result (``hists.json``: ``dict[str, hist.Hist]`` in the UHI JSON
serialisation, :func:`write_hists` / :func:`read_hists`; JSON, so reading someone else's
result cannot run code, as unpickling would; result and processor directories also
have them as ROOT histograms, ``hists.root``, :func:`write_hists_root`):

``null_t``
    t of the null replicas (permutations or toys); diverged fits land in the overflow.
``samples/<feature>``
    A and B (``group`` axis; ``sample`` is reserved by hist) in the feature's original
    units (GeV, not 100 GeV).
``fit/<feature>``
    The fitted densities of A and B, booked from the pooled events: n_A(x) =
    n_{A∪B}(x) σ(δ̂(x)), n_B = n_{A∪B}(x) (1 - σ(δ̂(x))) with δ̂ = log n_A/n_B as
    estimated by the statistic (for the symmetrized test f - g + log Ñ_A/Ñ_B,
    Eqs. 22–24, 31–33). In 5D these are projections of the 5D fit.
``delta/<feature>``
    The learned δ̂ averaged in bins of the feature (``Mean`` storage): where A and B
    differ, as a profile; in 1D it is δ̂ itself.
``functions``
    In 1D: f, g (when fitted) and δ̂ on a grid (``function`` axis, ``Double`` storage).

``run.json`` holds t, p, Z, dof, the binned diagnostics, the reweighting uncertainty
redrawn in the null (if any), the run description, seed, versions and timing.
``p_is_bound`` is true when no null replica reached the observed t: the empirical p
then only says p < 1/(n+1) and Z > Z(1/(n+1)) (:func:`p_value_is_bound`,
:func:`format_p_z`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hist
import numpy as np
import uhi.io.json
from hist.serialization import from_uhi, to_uhi
from scipy import stats

from symnplm.inference.results import CalibrationResult
from symnplm.io.files import atomic_path, read_json, write_json
from symnplm.io.provenance import provenance
from symnplm.io.samples import Sample
from symnplm.physics.binning import feature_edges

if TYPE_CHECKING:
    from symnplm.inference.diagnostics import BinnedDiagnostic
    from symnplm.inference.reweighting import ReweightingUncertainty
    from symnplm.workflow.config import RunConfig

__all__ = [
    "HISTS_JSON",
    "HISTS_ROOT",
    "N_BINS",
    "RUN_JSON",
    "BookedResult",
    "book_functions",
    "book_null",
    "book_result",
    "convergence_note",
    "feature_label",
    "format_p_z",
    "load_result",
    "p_value_is_bound",
    "read_hists",
    "result_p_is_bound",
    "summary",
    "write_hists",
    "write_hists_root",
    "write_result",
]

RUN_JSON = "run.json"
HISTS_JSON = "hists.json"
#: the same histograms as ROOT TH1/TH2/TProfile (uproot), one per combination of categories
HISTS_ROOT = "hists.root"
#: where earlier versions pickled their histograms (never read: unpickling runs code)
_HISTS_PICKLE = "hists.pkl"
#: bins of the feature axes
N_BINS = 40

_LABELS = {
    "m_coll": r"$m_{coll}$ [GeV]",
    "pt_lead": r"$p_T^{lead}$ [GeV]",
    "pt_sublead": r"$p_T^{sublead}$ [GeV]",
    "eta_lead": r"$\eta^{lead}$",
    "eta_sublead": r"$\eta^{sublead}$",
    "dphi": r"$|\Delta\phi_{\ell\ell}|$",
    "m_ll": r"$m_{e\mu}$ [GeV]",
    "met": r"$E_T^{miss}$ [GeV]",
}


def feature_label(name: str) -> str:
    """Axis label of a feature (LaTeX where known)."""
    return _LABELS.get(name, name)


def _scales(sample: Sample) -> np.ndarray:
    """Factors the workflow multiplied the features by (recorded in the provenance)."""
    factors = sample.provenance.get("feature_scale", {})
    return np.array([float(factors.get(n, 1.0)) for n in sample.names])


def _feature_axis(name: str, values: np.ndarray) -> hist.axis.Variable:
    # round edges on detector boundaries (the η crack), as the processor histograms
    edges = feature_edges(name, values, N_BINS)
    return hist.axis.Variable(edges, name=name, label=feature_label(name))


def p_value_is_bound(p_value: float, n_null: int) -> bool:
    """Whether an empirical p-value is at its floor 1/(n+1), hence only an upper bound.

    Parameters
    ----------
    p_value
        The empirical p = (1 + #{t_null ≥ t_obs}) / (n + 1).
    n_null
        Null replicas (0 for an asymptotic calibration, which has no floor).

    Returns
    -------
    bool
        True when no replica reached t_obs: the true p is below 1/(n+1).
    """
    # p·(n+1) is the integer 1 + #{t_null ≥ t_obs}; the tolerance absorbs rounding
    return n_null > 0 and p_value * (n_null + 1) < 1.5


def result_p_is_bound(result: CalibrationResult) -> bool:
    """:func:`p_value_is_bound` of a calibrated result (no null replica reached t_obs)."""
    null = result.null
    if null is None or len(null) == 0:
        return False
    return not bool(np.any(null.t >= result.t))


def format_p_z(p_value: float, z: float, bound: bool, sep: str = ", ") -> str:
    """``p = 0.123, Z = 1.16``, or ``p < 0.0099, Z > 2.33`` for a p-value at its floor.

    Parameters
    ----------
    p_value, z
        The p-value and its significance (JSON may hold infinities as strings).
    bound
        Whether ``p_value`` is only an upper bound (:func:`p_value_is_bound`).
    sep
        Between the p and the Z part.
    """
    p, zf = float(p_value), float(z)
    if bound:
        return f"p < {p:.2g}{sep}Z > {zf:.2f}"
    return f"p = {p:.3g}{sep}Z = {zf:.2f}"


def book_null(result: CalibrationResult, bins: int | None = None) -> hist.Hist | None:
    """Histogram of the null t values (``None`` for an asymptotic calibration).

    Default binning: about four replicas per bin, between 10 and 50 bins.
    """
    null = result.null
    if null is None:
        return None
    bins = bins or int(np.clip(len(null) // 4, 10, 50))
    finite = null.t[np.isfinite(null.t)]
    # the null's own range (and χ²_dof's bulk); an observed t far beyond is marked on plots
    top = max(float(np.max(finite)) if finite.size else 1.0, stats.chi2.ppf(0.999, result.dof))
    low = min(0.0, float(np.min(finite))) if finite.size else 0.0
    h: hist.Hist = hist.Hist(hist.axis.Regular(bins, low, 1.05 * top, name="t", label="t"))
    h.fill(t=np.where(np.isfinite(null.t), null.t, np.inf))
    return h


def book_result(result: CalibrationResult, a: Sample, b: Sample) -> dict[str, hist.Hist]:
    """All histograms of a result (see the module docstring)."""
    hists: dict[str, hist.Hist] = {}
    null_h = book_null(result)
    if null_h is not None:
        hists["null_t"] = null_h
    scale = _scales(a)
    pooled = Sample.concatenate([a, b])
    x_orig = pooled.features / scale
    w = pooled.weights
    is_a = np.r_[np.ones(len(a), bool), np.zeros(len(b), bool)]
    try:
        fitted = result.observed.evaluate(np.array(pooled.features))  # writable copy for torch
    except (KeyError, ValueError):  # no stored function (nothing to book)
        fitted = None
    for j, name in enumerate(a.names):
        axis = _feature_axis(name, x_orig[:, j])
        sample_axis = hist.axis.StrCategory(["A", "B"], name="group", label="sample")
        h = hist.Hist(sample_axis, axis, storage=hist.storage.Weight())
        h.fill(group="A", **{name: x_orig[is_a, j]}, weight=w[is_a])
        h.fill(group="B", **{name: x_orig[~is_a, j]}, weight=w[~is_a])
        hists[f"samples/{name}"] = h
        if fitted is None:
            continue
        delta = fitted["log_ratio"]
        share_a = 1.0 / (1.0 + np.exp(-delta))  # σ(δ̂) = n_A / (n_A + n_B)
        hf = hist.Hist(sample_axis, axis, storage=hist.storage.Weight())
        hf.fill(group="A", **{name: x_orig[:, j]}, weight=w * share_a)
        hf.fill(group="B", **{name: x_orig[:, j]}, weight=w * (1.0 - share_a))
        hists[f"fit/{name}"] = hf
        hd = hist.Hist(axis, storage=hist.storage.Mean())
        hd.fill(**{name: x_orig[:, j]}, sample=delta, weight=w)
        hists[f"delta/{name}"] = hd
    if fitted is not None and a.dim == 1:
        hists["functions"] = book_functions(
            result, hists[f"samples/{a.names[0]}"].axes[1], scale[0]
        )
    return hists


def book_functions(result: CalibrationResult, axis: hist.axis.Regular, scale: float) -> hist.Hist:
    """1D: the fitted functions and δ̂ at the centres of ``axis`` (original units)."""
    grid = hist.axis.Regular(200, axis.edges[0], axis.edges[-1], name=axis.name, label=axis.label)
    values = result.observed.evaluate(grid.centers * scale)
    names = list(values)
    h = hist.Hist(
        hist.axis.StrCategory(names, name="function", label="function"),
        grid,
        storage=hist.storage.Double(),
    )
    for name in names:
        h[name, :] = values[name]
    return h


def convergence_note(converged: bool, optimizer: str | None = None) -> str | None:
    """A warning for figures and summaries when the observed fit did not converge.

    Parameters
    ----------
    converged
        ``converged`` of the observed fit (``run.json``).
    optimizer
        ``"adam"`` runs fixed epochs and never reports convergence; anything else
        (Newton) stopped at its iteration cap.

    Returns
    -------
    str or None
        ``None`` for a converged fit.
    """
    if converged:
        return None
    if optimizer == "adam":
        return "observed fit: fixed Adam epochs, convergence not checked"
    return "observed fit NOT converged (iteration cap reached)"


# ---------------------------------------------------------------------------------------
# result directories
# ---------------------------------------------------------------------------------------
def write_hists(directory: str | os.PathLike[str], hists: dict[str, hist.Hist]) -> Path:
    """Write ``directory/hists.json`` (UHI JSON serialisation) atomically."""
    path = Path(directory) / HISTS_JSON
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        json.dump({k: to_uhi(h) for k, h in hists.items()}, fh, default=uhi.io.json.default)
    # an earlier version's pickle beside it would be stale
    (Path(directory) / _HISTS_PICKLE).unlink(missing_ok=True)
    return path


def write_hists_root(directory: str | os.PathLike[str], hists: dict[str, hist.Hist]) -> Path:
    """Write ``directory/hists.root`` (atomically): every histogram as ROOT TH1/TH2/TProfile.

    ROOT histograms have no category axes, so each combination of a histogram's
    category values is one object, named by the histogram and the values in axis
    order: ``m_coll/<dataset>/<category>/<variation>`` for the processor's,
    ``samples/<feature>/A`` for a result's. Under- and overflow are kept.

    * ``Weight`` storage: TH1D/TH2D with the sums of weights and of squared weights.
    * ``Double`` storage (``null_t``, ``functions``): TH1D/TH2D without sums of squared
      weights (ROOT then takes √content as the error).
    * ``Mean`` storage (the profiles ``delta/<feature>``): TProfile with each bin's mean
      and sum of weights (``fBinEntries``) and Σ w·y². The storage keeps no Σ w², so
      ``fBinSumw2`` is Σ w: ROOT's errors on these profiles count the weights as events.
    """
    import itertools

    import uproot

    path = Path(directory) / HISTS_ROOT
    with atomic_path(path) as tmp, uproot.recreate(tmp) as out:
        for name, h in hists.items():
            categories = [
                ax
                for ax in h.axes
                if isinstance(ax, (hist.axis.StrCategory, hist.axis.IntCategory))
            ]
            for values in itertools.product(*(list(ax) for ax in categories)):
                where: dict[int | str, Any] = dict(zip((ax.name for ax in categories), values))
                one = h[where]
                out["/".join([name, *map(str, values)])] = one
    return path


def read_hists(directory: str | os.PathLike[str]) -> dict[str, hist.Hist]:
    """The histograms of a result or processor output directory (``hists.json``).

    Only that file inside ``directory`` is read, whatever a manifest says, and never a
    pickle: an output written by an earlier version (``hists.pkl``) must be remade.
    """
    directory = Path(directory)
    path = directory / HISTS_JSON
    if not path.is_file():
        if (directory / _HISTS_PICKLE).exists():
            raise FileNotFoundError(
                f"{directory}: its histograms are in {_HISTS_PICKLE}, written by an earlier "
                "version; pickles can run code and are not read: remake the directory"
            )
        raise FileNotFoundError(f"{directory}: no {HISTS_JSON}")
    try:
        with open(path) as fh:
            raw = json.load(fh, object_hook=uhi.io.json.object_hook)
        return {k: from_uhi(v) for k, v in raw.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{path}: not a histogram file written by symnplm ({err})") from None


def summary(
    result: CalibrationResult,
    cfg: RunConfig,
    timing: dict[str, float],
    a: Sample,
    b: Sample,
    diagnostics: list[BinnedDiagnostic] | None = None,
    reweighting: ReweightingUncertainty | None = None,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """The ``run.json`` payload."""
    null = result.null
    diagnostics = diagnostics or []
    return {
        "kind": "symnplm-run",
        "statistic": result.observed.statistic,
        "features": list(a.names),
        "t": result.t,
        "dof": result.dof,
        "p_value": result.p_value,
        "z": result.z,
        "p_is_bound": result_p_is_bound(result),
        "calibration": result.method,
        "n_null": len(null) if null is not None else 0,
        "null_divergent_fraction": null.divergent_fraction if null is not None else None,
        "p_asymptotic": result.observed.p_asymptotic,
        "z_asymptotic": result.observed.z_asymptotic,
        "chi2_fit": result.chi2_fit.to_dict() if result.chi2_fit else None,
        "converged": result.observed.converged,
        "diagnostics": [d.to_dict() for d in diagnostics],
        "diagnostics_min_p": min((d.p_value for d in diagnostics), default=None),
        "reweighting_uncertainty": None if reweighting is None else reweighting.describe(),
        "notes": list(notes or []),
        "samples": {
            key: {
                "name": s.name,
                "n_events": len(s),
                "sum_weights": s.sum_weights,
                "provenance": s.provenance,
            }
            for key, s in (("A", a), ("B", b))
        },
        "seed": cfg.seed,
        "config": cfg.to_dict(),
        "provenance": provenance(),
        "timing": timing,
    }


def write_result(
    directory: str | os.PathLike[str],
    cfg: RunConfig,
    result: CalibrationResult,
    a: Sample,
    b: Sample,
    timing: dict[str, float],
    diagnostics: list[BinnedDiagnostic] | None = None,
    reweighting: ReweightingUncertainty | None = None,
    notes: list[str] | None = None,
) -> Path:
    """Write a result directory: the calibration, the histograms and, last, ``run.json``.

    A ``run.json`` of an earlier run is removed first, so a directory never shows a
    finished run beside the files of a new one.
    """
    directory = Path(directory)
    (directory / RUN_JSON).unlink(missing_ok=True)
    result.save(directory)
    hists = book_result(result, a, b)
    write_hists(directory, hists)
    write_hists_root(directory, hists)
    # run.json last: its presence means the directory is complete
    write_json(
        directory / RUN_JSON, summary(result, cfg, timing, a, b, diagnostics, reweighting, notes)
    )
    return directory


@dataclass
class BookedResult:
    """A result directory read back."""

    directory: Path
    summary: dict[str, Any]
    calibration: CalibrationResult
    hists: dict[str, hist.Hist]

    @property
    def features(self) -> list[str]:
        """Tested features."""
        return list(self.summary["features"])


def load_result(directory: str | os.PathLike[str]) -> BookedResult:
    """Read a directory written by :func:`write_result`."""
    directory = Path(directory)
    if not (directory / RUN_JSON).exists():
        raise FileNotFoundError(
            f"{directory}: no {RUN_JSON}, so not a complete result directory "
            "(wrong path, or the run was interrupted)"
        )
    meta = read_json(directory / RUN_JSON)
    return BookedResult(directory, meta, CalibrationResult.load(directory), read_hists(directory))
