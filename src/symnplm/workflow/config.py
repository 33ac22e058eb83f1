"""Run descriptions: one two-sample test with its inputs, statistic and calibration.

A run is a tree of dataclasses (:class:`RunConfig`) that can be written as YAML or
TOML and is validated strictly: an unknown key or a value of the wrong type is an
error naming the file and the dotted key (``statistic.architecture``), so a typo
never silently falls back to a default. Command-line flags of ``symnplm test``
override the file key by key (:func:`merge`).

Example (YAML)::

    input: results/demo/processed       # output of `symnplm process`
    a: {category: emu}
    b: {category: mue}
    features: [m_coll]                  # or "5d" (TWO_BODY_FEATURES)
    unweight: none                      # weights as they are (thin: pseudo-data)
    statistic: {method: symmetrized, architecture: [1, 4, 1], optimizer: newton}
    calibration: {method: permutations, n: 200, batch_size: 25}
    seed: 1
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

from symnplm.exceptions import ConfigError
from symnplm.physics.kinematics import TWO_BODY_FEATURES

__all__ = [
    "DEFAULT_PERMUTATIONS",
    "FEATURE_SETS",
    "GEV_COLUMNS",
    "CalibrationSpec",
    "InjectionSpec",
    "RunConfig",
    "SampleSpec",
    "StatisticSpec",
    "ToySpec",
    "dump_yaml",
    "from_dict",
    "from_mapping",
    "load",
    "merge",
    "read_dict",
]

#: feature-set aliases accepted by ``features``
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "1d": ("m_coll",),
    "m_coll": ("m_coll",),
    "5d": TWO_BODY_FEATURES,
}

#: columns in GeV; the engine sees them in units of 100 GeV (as in 2401.09530, Sec. IV),
#: so that sigmoid networks with O(1) initial weights resolve their structure
GEV_COLUMNS: tuple[str, ...] = (
    "m_coll",
    "m_ll",
    "met",
    "pt_lead",
    "pt_sublead",
    "pt_e",
    "pt_mu",
)


@dataclass
class SampleSpec:
    """Where one of the two samples comes from.

    Either ``path`` (one parquet file written by :meth:`Sample.to_parquet`) or a
    selection of the processor output given by :attr:`RunConfig.input`: the sum of
    ``datasets`` (default: every non-signal dataset) in ``category`` / ``variation``.
    """

    path: str | None = None
    datasets: list[str] | None = None
    category: str | None = None
    variation: str = "nominal"


@dataclass
class ToySpec:
    """The toy model of 2401.09530 (Eq. 25, signals Eqs. 26–28), used without inputs."""

    n_a: float = 2000.0
    n_b: float = 2000.0
    signal: Literal["S1", "S2", "S3"] | None = None
    n_signal: float = 0.0


@dataclass
class InjectionSpec:
    """LFV signal added to both samples (it populates emu and mue differently).

    Signal simulation is normalised to the branching ratio recorded in its fileset
    metadata (``lfv_branching_ratio``); its weights are rescaled to ``branching_ratio``.
    """

    branching_ratio: float = 0.0
    datasets: list[str] = field(default_factory=lambda: ["ggh_htaue", "vbfh_htaue"])


@dataclass
class StatisticSpec:
    """The test statistic and its optimiser (see :mod:`symnplm.inference`).

    ``record_every``: t is recorded every this many epochs / Newton iterations (the
    training history of Fig. 7).
    """

    method: Literal["symmetrized", "nplm", "crossentropy", "binned"] = "symmetrized"
    architecture: list[int] | None = None
    optimizer: Literal["adam", "newton"] = "newton"
    epochs: int = 20_000
    # the engine's cap (symnplm.engine.fitting.NEWTON_MAX_ITER; config stays torch-free)
    max_iter: int = 1000
    bins: int = 20
    clip: float | None = None
    record_every: int = 100
    dtype: Literal["float32", "float64"] = "float32"
    device: str = "cpu"


#: permutations calibrating real samples when the run says nothing else
DEFAULT_PERMUTATIONS = 100


@dataclass
class CalibrationSpec:
    """How t becomes a p-value, and where the null replicas run.

    ``batch_size`` replicas form one batched fit and one file of the campaign
    directory; ``workers`` local dask workers are started unless ``scheduler``
    (an address such as ``tcp://host:8786``) names a running cluster.

    Without a ``method``, samples from a processor output or parquet files are
    calibrated by :data:`DEFAULT_PERMUTATIONS` permutations and toys asymptotically:
    on e-mu samples the χ² of the asymptotic p-value is not the null of t (an SM
    sample at 20 fb⁻¹, map-corrected: m_coll t = 32.0 at 12 dof, asymptotic Z = 3.0,
    permutation p = 0.069), so a believable answer needs the permutations.
    """

    # None: permutations (DEFAULT_PERMUTATIONS) for real samples, asymptotic for toys
    method: Literal["asymptotic", "permutations", "toys"] | None = None
    n: int | None = None
    batch_size: int | None = None
    workers: int = 1
    scheduler: str | None = None


@dataclass
class RunConfig:
    """One calibrated two-sample test.

    Attributes
    ----------
    input
        Processor output directory (``symnplm process``); needed for samples given
        by category.
    a, b
        The two samples (defaults: categories ``emu`` and ``mue``).
    features
        Feature columns, or one alias of :data:`FEATURE_SETS` (``"m_coll"``, ``"5d"``);
        default ``m_coll`` (every column of the files for parquet samples).
    scale
        Multiplies each feature column before the fit; default 1/100 for GeV columns.
    luminosity_fb
        Rescale simulation to this luminosity; default: the luminosity of the
        background datasets recorded in the fileset metadata (``luminosity_fb``).
    unweight
        ``"none"`` (default): the weights are used as they are; permutations relabel
        weighted events, so the null fluctuates as the weighted samples do.
        ``"thin"``: pseudo-data with unit weights, event i kept with probability w_i
        (needs w ≤ 1: simulation of at least the pseudo-data's luminosity), so t is
        computed on event counts (:func:`symnplm.workflow.unweight`). Duplicating
        events is not offered: it adds the simulation's fluctuation to the data's.
    inject
        Signal to add to both samples.
    diagnostics
        Binned G-tests reported with the result: ``feature`` or ``feature1:feature2``
        names; default (``None``) every one of :data:`symnplm.workflow.DIAGNOSTICS`
        the samples have columns for; ``[]`` for none.
    map_uncertainty
        Redraw the efficiency map's bin-by-bin uncertainty in every null replica when
        the processor applied a map that has one (default true).
    nuisances
        Detector nuisances profiled by the symmetrized test (t = τ − Δ,
        :class:`~symnplm.systematics.NuisanceSymmetrizedTest`): variation sources of the
        processor output (``electron_scale``, ``muon_scale``, ``efficiency``); their
        effect δ_k(x) on A and on B is learned from the ``<source>_up/down`` samples.
    toy
        Toy model settings, used when neither ``input`` nor sample paths are given.
    seed
        Seeds the unweighting, the network initialisations and every null replica.
    output
        Result directory.
    """

    input: str | None = None
    a: SampleSpec = field(default_factory=lambda: SampleSpec(category="emu"))
    b: SampleSpec = field(default_factory=lambda: SampleSpec(category="mue"))
    features: list[str] | str | None = None
    scale: dict[str, float] | None = None
    luminosity_fb: float | None = None
    unweight: Literal["none", "thin"] = "none"
    inject: InjectionSpec | None = None
    diagnostics: list[str] | None = None
    map_uncertainty: bool = True
    nuisances: list[str] = field(default_factory=list)
    toy: ToySpec = field(default_factory=ToySpec)
    statistic: StatisticSpec = field(default_factory=StatisticSpec)
    calibration: CalibrationSpec = field(default_factory=CalibrationSpec)
    seed: int = 0
    output: str | None = None

    def __post_init__(self) -> None:
        # a side given only in part (a variation, datasets) keeps its default category
        for spec, category in ((self.a, "emu"), (self.b, "mue")):
            if spec.category is None and spec.path is None:
                spec.category = category
        if self.calibration.method is None:  # see CalibrationSpec
            real = self.source != "toy"
            self.calibration.method = "permutations" if real else "asymptotic"
            if real and self.calibration.n is None:
                self.calibration.n = DEFAULT_PERMUTATIONS
        _check_values(self)

    # -- derived ------------------------------------------------------------------------
    @property
    def feature_names(self) -> tuple[str, ...]:
        """The feature columns (aliases resolved)."""
        if self.features is None:
            return FEATURE_SETS["m_coll"]
        if isinstance(self.features, str):
            return FEATURE_SETS.get(self.features.lower(), (self.features,))
        return tuple(self.features)

    def feature_scale(self) -> dict[str, float]:
        """Factor applied to each feature column."""
        default = {f: (0.01 if f in GEV_COLUMNS else 1.0) for f in self.feature_names}
        return {**default, **(self.scale or {})}

    @property
    def source(self) -> Literal["processed", "parquet", "toy"]:
        """Where the samples come from."""
        if self.a.path is not None or self.b.path is not None:
            return "parquet"
        return "processed" if self.input is not None else "toy"

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON/YAML/TOML-able except for ``None`` in TOML)."""
        return dataclasses.asdict(self)


def _check_device(name: str) -> None:
    """``statistic.device`` names a torch device present on this machine."""
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(
            f"statistic.device: {name!r} is not a torch device (cpu, cuda, cuda:1, mps, …)"
        ) from None
    present = {
        "cpu": 1,
        "cuda": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "mps": int(torch.backends.mps.is_available()),
    }.get(device.type, 0)
    if present <= (device.index or 0):
        raise ConfigError(
            f"statistic.device: {name!r} is not available on this machine "
            f"(torch {torch.__version__})"
        )


def _check_values(cfg: RunConfig) -> None:
    """Cross-field checks that types alone cannot express."""
    if cfg.statistic.device != "cpu":
        _check_device(cfg.statistic.device)
    if (cfg.a.path is None) != (cfg.b.path is None):
        raise ConfigError("a.path and b.path: give both sample files, or neither")
    if cfg.calibration.method != "asymptotic" and (cfg.calibration.n or 0) < 1:
        raise ConfigError(
            f"calibration.n: method {cfg.calibration.method!r} needs a number of replicas >= 1, "
            f"got {cfg.calibration.n}"
        )
    for key, value in (
        ("calibration.workers", cfg.calibration.workers),
        ("calibration.batch_size", cfg.calibration.batch_size),
        ("statistic.bins", cfg.statistic.bins),
        ("statistic.max_iter", cfg.statistic.max_iter),
        ("statistic.epochs", cfg.statistic.epochs),
        ("statistic.record_every", cfg.statistic.record_every),
    ):
        if value is not None and value < 1:
            raise ConfigError(f"{key}: must be >= 1, got {value}")
    # numbers that must be finite and positive (or >= 0); "not x > 0" also catches NaN
    positive = [
        ("luminosity_fb", cfg.luminosity_fb),
        ("toy.n_a", cfg.toy.n_a),
        ("toy.n_b", cfg.toy.n_b),
        *((f"scale.{k}", v) for k, v in (cfg.scale or {}).items()),
    ]
    for key, value in positive:
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{key}: must be a positive number, got {value}")
    non_negative = [("toy.n_signal", cfg.toy.n_signal)]
    if cfg.inject is not None:
        non_negative.append(("inject.branching_ratio", cfg.inject.branching_ratio))
    for key, value in non_negative:
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"{key}: must be a number >= 0, got {value}")
    if not cfg.feature_names:
        raise ConfigError("features: at least one feature is needed")
    twice = sorted({f for f in cfg.feature_names if cfg.feature_names.count(f) > 1})
    if twice:
        raise ConfigError(f"features: {twice} listed twice")
    unknown = set(cfg.scale or {}) - set(cfg.feature_names)
    if unknown:
        raise ConfigError(
            f"scale: {sorted(unknown)} are not among the features {cfg.feature_names}"
        )
    if cfg.nuisances:
        if cfg.source != "processed":
            raise ConfigError("nuisances: learned from processor output; give input")
        if cfg.statistic.method != "symmetrized":
            raise ConfigError(
                f"nuisances: profiled by the symmetrized statistic, not {cfg.statistic.method!r}"
            )
        if len(set(cfg.nuisances)) != len(cfg.nuisances):
            raise ConfigError(f"nuisances: listed twice in {cfg.nuisances}")
        if "norm" in cfg.nuisances:
            raise ConfigError(
                "nuisances: 'norm' scales A and B alike, which the symmetrized test does not "
                "see (its A/B ratio floats); leave it out"
            )


# ---------------------------------------------------------------------------------------
# dict -> dataclass with type checking
# ---------------------------------------------------------------------------------------
def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(v) for v in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in typing.get_args(tp))}]"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _same_kind(value: Any, tp: Any) -> bool:
    """Whether ``value`` is the container ``tp`` describes (list, dict or dataclass)."""
    origin = typing.get_origin(tp)
    if origin is list:
        return isinstance(value, (list, tuple))
    if origin is dict or dataclasses.is_dataclass(tp):
        return isinstance(value, dict)
    return False


def _convert(value: Any, tp: Any, key: str) -> Any:
    """``value`` checked against the annotation ``tp``; raises :class:`ConfigError`."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = [o for o in typing.get_args(tp) if o is not type(None)]
        if value is None and len(options) < len(typing.get_args(tp)):
            return None
        for option in options:
            try:
                return _convert(value, option, key)
            except ConfigError as err:
                # a container of the right kind with a bad item: that error is the precise one
                if _same_kind(value, option):
                    raise err from None
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if tp is type(None):
        if value is None:
            return None
    elif origin is Literal:
        if value in typing.get_args(tp):
            return value
    elif dataclasses.is_dataclass(tp):
        if isinstance(value, dict):
            return _from_dict(tp, value, key + ".")
    elif origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, (list, tuple)):
            return [_convert(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    elif origin is dict:
        k_tp, v_tp = typing.get_args(tp)
        if isinstance(value, dict):
            return {
                _convert(k, k_tp, f"{key} key"): _convert(v, v_tp, f"{key}.{k}")
                for k, v in value.items()
            }
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        # an integer is a float (YAML writes 20 for 20.0); a bool is not
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - an annotation this module does not know
        raise TypeError(f"{key}: unsupported annotation {tp!r}")
    raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")


def _from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"{prefix}{unknown[0]}: unknown key"
            + (f" (also {unknown[1:]})" if len(unknown) > 1 else "")
            + f"; allowed keys{' in ' + prefix.rstrip('.') if prefix else ''}: {sorted(names)}"
        )
    kwargs = {k: _convert(v, hints[k], prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def from_mapping(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """A validated instance of the dataclass ``cls`` (e.g. a scan description) from ``data``.

    Unknown keys and values of the wrong type raise :class:`ConfigError` naming the key.
    """
    return _from_dict(cls, data, prefix)


def from_dict(data: dict[str, Any]) -> RunConfig:
    """A validated :class:`RunConfig` from a (parsed YAML/TOML) dict."""
    if not isinstance(data, dict):
        raise ConfigError(f"a run description is a mapping of keys, got {type(data).__name__}")
    return _from_dict(RunConfig, data)


def read_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a YAML (``.yaml``/``.yml``) or TOML (``.toml``) file into a dict."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such configuration file") from None
    suffix = path.suffix.lower()
    if suffix == ".toml":
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: not valid TOML ({err})") from None
    elif suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({err})") from None
    else:
        raise ConfigError(f"{path}: configuration files end in .yaml, .yml or .toml")
    return {} if data is None else data


def load(path: str | os.PathLike[str]) -> RunConfig:
    """Read and validate a run description; errors name the file and the key."""
    data = read_dict(path)
    try:
        return from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` applied; dotted keys (``"calibration.n"``) reach sub-tables."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in overrides.items():
        head, _, rest = key.partition(".")
        if rest:
            sub = out.get(head)
            out[head] = merge(sub if isinstance(sub, dict) else {}, {rest: value})
        else:
            out[key] = value
    return out


def dump_yaml(cfg: RunConfig, path: str | os.PathLike[str]) -> Path:
    """Write ``cfg`` as YAML (atomically); :func:`load` reads it back to an equal config."""
    import yaml

    from symnplm.io.files import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    return path
