"""Run descriptions: one two-sample test with its inputs, statistic and calibration.

A run is a tree of pydantic dataclasses (:class:`RunConfig`) that can be written as
YAML or TOML and is validated strictly: an unknown key or a value of the wrong type is
an error naming the file and the dotted key (``statistic.architecture``), so a typo
never silently falls back to a default. Types are not coerced (``"false"`` is not a
boolean, ``1`` not a string, ``true`` not a number), except that an integer is a float.
Command-line flags of ``symnplm test`` override the file key by key (:func:`merge`).

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
import functools
import os
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union

from pydantic import (
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.dataclasses import dataclass
from typing_extensions import dataclass_transform

from symnplm.exceptions import ConfigError
from symnplm.physics.kinematics import TWO_BODY_FEATURES

__all__ = [
    "DEFAULT_PERMUTATIONS",
    "FEATURE_SETS",
    "GEV_COLUMNS",
    "CalibrationSpec",
    "Count",
    "InjectionSpec",
    "NonNegative",
    "Positive",
    "RunConfig",
    "SampleSpec",
    "StatisticSpec",
    "ToySpec",
    "default_sides",
    "dump_yaml",
    "error_line",
    "from_dict",
    "from_mapping",
    "load",
    "merge",
    "read_dict",
    "type_name",
    "validated",
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

#: a number of things (replicas, workers, bins, iterations): an integer >= 1
Count = Annotated[StrictInt, Field(ge=1)]
#: a finite number > 0 (an integer is accepted)
Positive = Annotated[StrictFloat, Field(gt=0, allow_inf_nan=False)]
#: a finite number >= 0
NonNegative = Annotated[StrictFloat, Field(ge=0, allow_inf_nan=False)]

_T = TypeVar("_T")


@dataclass_transform(field_specifiers=(dataclasses.field, Field))
def validated(cls: type[_T]) -> type[_T]:
    """``cls`` as a pydantic dataclass of a run or scan file.

    Unknown keys are errors. The scalar types are written strict (``StrictInt``, ...)
    rather than the whole class: a strict pydantic dataclass refuses a mapping for a
    nested table. Constructing one (also through :func:`dataclasses.replace`) raises
    :class:`ConfigError` with one line naming the dotted key.
    """
    built = typing.cast("type[_T]", dataclass(config=ConfigDict(extra="forbid"))(cls))
    init: Callable[..., None] = built.__init__

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            init(self, *args, **kwargs)
        except ValidationError as err:
            raise ConfigError(error_line(built, err)) from None

    setattr(built, "__init__", __init__)  # noqa: B010 - mypy refuses assigning a method
    return built


@validated
class SampleSpec:
    """Where one of the two samples comes from.

    Either ``path`` (one parquet file written by :meth:`Sample.to_parquet`) or a
    selection of the processor output given by :attr:`RunConfig.input`: the sum of
    ``datasets`` (default: every non-signal dataset) in ``category`` / ``variation``.
    """

    path: StrictStr | None = None
    datasets: list[StrictStr] | None = None
    category: StrictStr | None = None
    variation: StrictStr = "nominal"


@validated
class ToySpec:
    """The toy model of 2401.09530 (Eq. 25, signals Eqs. 26–28), used without inputs."""

    n_a: Positive = 2000.0
    n_b: Positive = 2000.0
    signal: Literal["S1", "S2", "S3"] | None = None
    n_signal: NonNegative = 0.0


@validated
class InjectionSpec:
    """LFV signal added to both samples (it populates emu and mue differently).

    Signal simulation is normalised to the branching ratio recorded in its fileset
    metadata (``lfv_branching_ratio``); its weights are rescaled to ``branching_ratio``.
    """

    branching_ratio: NonNegative = 0.0
    datasets: list[StrictStr] = field(default_factory=lambda: ["ggh_htaue", "vbfh_htaue"])


@validated
class StatisticSpec:
    """The test statistic and its optimiser (see :mod:`symnplm.inference`).

    ``record_every``: t is recorded every this many epochs / Newton iterations (the
    training history of Fig. 7).
    """

    method: Literal["symmetrized", "nplm", "crossentropy", "binned"] = Field(
        default="symmetrized",
        description="the test statistic: `symmetrized` t_{A+B}(A+B), `nplm` t_B(A), "
        "`crossentropy` t^δ, `binned` (see Statistics)",
    )
    architecture: list[StrictInt] | None = None
    optimizer: Literal["adam", "newton"] = "newton"
    epochs: Count = 20_000
    # the engine's cap (symnplm.engine.fitting.NEWTON_MAX_ITER; config stays torch-free)
    max_iter: Count = 1000
    bins: Count = 20
    n_starts: Count = Field(
        default=1,
        description="initialisations of every network fit, the best kept (a network's "
        "likelihood has many local maxima; k starts cost about k times one)",
    )
    clip: StrictFloat | None = None
    record_every: Count = 100
    dtype: Literal["float32", "float64"] = Field(
        default="float32", description="working precision of the network evaluation"
    )
    device: StrictStr = "cpu"

    @model_validator(mode="after")
    def _device_is_here(self) -> StatisticSpec:
        """``device`` names a torch device present on this machine."""
        if self.device == "cpu":
            return self  # torch is not imported to validate a run file
        import torch

        try:
            device = torch.device(self.device)
        except (RuntimeError, ValueError):
            raise ConfigError(
                f"device: {self.device!r} is not a torch device (cpu, cuda, cuda:1, mps, …)"
            ) from None
        present = {
            "cpu": 1,
            "cuda": torch.cuda.device_count() if torch.cuda.is_available() else 0,
            "mps": int(torch.backends.mps.is_available()),
        }.get(device.type, 0)
        if present <= (device.index or 0):
            raise ConfigError(
                f"device: {self.device!r} is not available on this machine "
                f"(torch {torch.__version__})"
            )
        return self


#: permutations calibrating real samples when the run says nothing else
DEFAULT_PERMUTATIONS = 100


@validated
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
    method: Literal["asymptotic", "permutations", "toys"] | None = Field(
        default=None,
        description="`asymptotic` (χ² with the statistic's dof), `permutations` or `toys`; "
        "`--calibration METHOD:N` sets it with `calibration.n`",
    )
    n: StrictInt | None = Field(
        default=None, description="number of null replicas (permutations or toys); required by both"
    )
    batch_size: Count | None = None
    workers: Count = 1
    scheduler: StrictStr | None = None


def default_sides(a: SampleSpec, b: SampleSpec) -> tuple[SampleSpec, SampleSpec]:
    """A and B with their default categories (emu, mue) where neither a category nor a
    file is given (a side given only in part, a variation or datasets, keeps it)."""
    if (a.path is None) != (b.path is None):
        raise ConfigError("a.path and b.path: give both sample files, or neither")
    return tuple(  # type: ignore[return-value]
        dataclasses.replace(spec, category=category)
        if spec.category is None and spec.path is None
        else spec
        for spec, category in ((a, "emu"), (b, "mue"))
    )


@validated
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

    input: StrictStr | None = None
    a: SampleSpec = field(default_factory=lambda: SampleSpec(category="emu"))
    b: SampleSpec = field(default_factory=lambda: SampleSpec(category="mue"))
    features: list[StrictStr] | StrictStr | None = None
    scale: dict[StrictStr, Positive] | None = None
    luminosity_fb: Positive | None = None
    unweight: Literal["none", "thin"] = "none"
    inject: InjectionSpec | None = None
    diagnostics: list[StrictStr] | None = None
    map_uncertainty: StrictBool = True
    nuisances: list[StrictStr] = field(default_factory=list)
    toy: ToySpec = field(default_factory=ToySpec)
    statistic: StatisticSpec = field(default_factory=StatisticSpec)
    calibration: CalibrationSpec = field(default_factory=CalibrationSpec)
    seed: StrictInt = 0
    output: StrictStr | None = None

    @model_validator(mode="after")
    def _defaults_and_cross_checks(self) -> RunConfig:
        """Defaults that depend on other keys, and checks that types cannot express."""
        self.a, self.b = default_sides(self.a, self.b)
        cal = self.calibration
        if cal.method is None:  # see CalibrationSpec
            real = self.source != "toy"
            self.calibration = dataclasses.replace(
                cal,
                method="permutations" if real else "asymptotic",
                n=DEFAULT_PERMUTATIONS if real and cal.n is None else cal.n,
            )
        cal = self.calibration
        if cal.method != "asymptotic" and (cal.n or 0) < 1:
            raise ConfigError(
                f"calibration.n: method {cal.method!r} needs a number of replicas >= 1, got {cal.n}"
            )
        names = self.feature_names
        if not names:
            raise ConfigError("features: at least one feature is needed")
        twice = sorted({f for f in names if names.count(f) > 1})
        if twice:
            raise ConfigError(f"features: {twice} listed twice")
        unknown = set(self.scale or {}) - set(names)
        if unknown:
            raise ConfigError(f"scale: {sorted(unknown)} are not among the features {names}")
        if self.nuisances:
            self._check_nuisances()
        return self

    def _check_nuisances(self) -> None:
        if self.source != "processed":
            raise ConfigError("nuisances: learned from processor output; give input")
        if self.statistic.method != "symmetrized":
            raise ConfigError(
                f"nuisances: profiled by the symmetrized statistic, not {self.statistic.method!r}"
            )
        if len(set(self.nuisances)) != len(self.nuisances):
            raise ConfigError(f"nuisances: listed twice in {self.nuisances}")
        if "norm" in self.nuisances:
            raise ConfigError(
                "nuisances: 'norm' scales A and B alike, which the symmetrized test does not "
                "see (its A/B ratio floats); leave it out"
            )

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


# ---------------------------------------------------------------------------------------
# pydantic's errors as one line naming the dotted key
# ---------------------------------------------------------------------------------------
def type_name(tp: Any) -> str:
    """An annotation as errors and the documentation name it (``list[str] | null``)."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return type_name(typing.get_args(tp)[0])
    if origin is Literal:
        return " | ".join(repr(v) for v in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        return f"{origin.__name__}[{', '.join(type_name(a) for a in typing.get_args(tp))}]"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _not_null(tp: Any) -> list[Any]:
    """The members of a union other than ``None`` (``[tp]`` for any other annotation)."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        return [m for m in typing.get_args(tp) if m is not type(None)]
    return [tp]


def _join(key: str, part: str) -> str:
    return f"{key}.{part}" if key else part


def _locate(cls: type, loc: tuple[int | str, ...], key: str = "") -> tuple[str, Any, bool]:
    """The dotted key and the annotation of the value that ``loc`` points at, and whether
    ``loc`` ends on a member of a union (the value is none of them)."""
    tp: Any = cls
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        members = _not_null(tp)
        if len(members) > 1:  # pydantic's loc names the member of a union it tried
            if not parts:
                return key, tp, True
            kind = str(part).partition("[")[0]
            tp = next(
                (m for m in members if getattr(typing.get_origin(m), "__name__", None) == kind),
                None,
            )
            continue
        (tp,) = members
        origin = typing.get_origin(tp)
        if dataclasses.is_dataclass(tp):
            key, tp = _join(key, str(part)), typing.get_type_hints(tp).get(str(part))
        elif origin is list:
            key, tp = f"{key}[{part}]", typing.get_args(tp)[0]
        elif origin is dict and parts[:1] == ["[key]"]:  # a bad key: (..., key, "[key]")
            parts.pop(0)
            key, tp = f"{key} key", typing.get_args(tp)[0]
        elif origin is dict:
            key, tp = _join(key, str(part)), typing.get_args(tp)[1]
        else:
            key, tp = _join(key, str(part)), None
    return key, tp, False


#: pydantic's error types of a key a table does not have
_UNKNOWN = ("unexpected_keyword_argument", "invalid_key")


def _unknown_keys(cls: type, errors: list[Any], loc: tuple[Any, ...], prefix: str) -> str:
    """``key: unknown key (also [...]); allowed keys in table: [...]``."""
    table, tp, _ = _locate(cls, loc[:-1], prefix)
    names = sorted(
        str(e["loc"][-1]) for e in errors if e["type"] in _UNKNOWN and e["loc"][:-1] == loc[:-1]
    )
    allowed = sorted(
        f.name for m in _not_null(tp) if dataclasses.is_dataclass(m) for f in dataclasses.fields(m)
    )
    return (
        f"{_join(table, names[0])}: unknown key"
        + (f" (also {names[1:]})" if len(names) > 1 else "")
        + f"; allowed keys{' in ' + table if table else ''}: {allowed}"
    )


def error_line(cls: type, err: ValidationError, prefix: str = "") -> str:
    """The first error of validating ``cls`` as one line: ``dotted.key: what is wrong``.

    ``prefix`` is the dotted key of ``cls`` itself (empty for a whole file).
    """
    errors = err.errors(include_url=False)
    first = errors[0]
    key, tp, at_union = _locate(cls, first["loc"], prefix)
    if at_union:
        # a container of a union member's kind with a bad item: that error is the precise one
        stem, n = first["loc"][:-1], len(first["loc"])
        deeper = [e for e in errors if e["loc"][: n - 1] == stem and len(e["loc"]) > n]
        if deeper:
            first = deeper[0]
            key, tp, _ = _locate(cls, first["loc"], prefix)
    kind, ctx, value = first["type"], first.get("ctx", {}), first["input"]
    if kind in _UNKNOWN:
        return _unknown_keys(cls, errors, first["loc"], prefix)
    if isinstance(ctx.get("error"), ConfigError):  # a validator's, keyed within its table
        return _join(key, str(ctx["error"]))
    if kind == "greater_than":
        what = "a positive number" if ctx["gt"] == 0 else f"> {ctx['gt']}"
    elif kind == "greater_than_equal":
        what = f">= {ctx['ge']}"
    elif kind == "finite_number":
        what = "a finite number"
    elif tp is not None:
        return f"{key}: expected {type_name(tp)}, got {value!r}"
    else:
        return f"{key}: {first['msg']}, got {value!r}"
    return f"{key}: must be {what}, got {value}"


# ---------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------
def from_mapping(cls: type[_T], data: dict[str, Any], prefix: str = "") -> _T:
    """A validated instance of the dataclass ``cls`` (e.g. a scan description) from ``data``.

    Unknown keys and values of the wrong type raise :class:`ConfigError` naming the key
    (after ``prefix``, the dotted key of ``data`` itself).
    """
    try:
        return TypeAdapter(cls).validate_python(data)
    except ValidationError as err:
        raise ConfigError(error_line(cls, err, prefix.rstrip("."))) from None


def from_dict(data: dict[str, Any]) -> RunConfig:
    """A validated :class:`RunConfig` from a (parsed YAML/TOML) dict."""
    if not isinstance(data, dict):
        raise ConfigError(f"a run description is a mapping of keys, got {type(data).__name__}")
    return from_mapping(RunConfig, data)


def read_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a YAML (``.yaml``/``.yml``) or TOML (``.toml``) file into a dict.

    A file whose top level is not a mapping (a list, a number) is a :class:`ConfigError`
    naming the file; an empty YAML file is an empty mapping.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such configuration file") from None
    suffix = path.suffix.lower()
    if suffix == ".toml":
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # the same parser, before it joined the standard library
            import tomli as tomllib

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
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of keys at the top level, got a {type(data).__name__}"
        )
    return data


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
