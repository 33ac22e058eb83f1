"""Run descriptions: YAML/TOML, strict validation naming the key, CLI overrides."""

from __future__ import annotations

import json
import re

import pytest

from symnplm.cli import main
from symnplm.physics.kinematics import TWO_BODY_FEATURES
from symnplm.workflow import config as C


def test_yaml_and_toml_describe_the_same_run(tmp_path):
    (tmp_path / "run.yaml").write_text(
        "input: out\n"
        "a: {category: emu, datasets: [ttbar]}\n"
        "b: {category: mue, variation: muon_scale_up1}\n"
        "features: 5d\n"
        "unweight: thin\n"
        "statistic: {method: symmetrized, architecture: [5, 4, 1], max_iter: 30}\n"
        "calibration: {method: permutations, n: 40, batch_size: 10}\n"
        "seed: 7\n"
    )
    (tmp_path / "run.toml").write_text(
        'input = "out"\nfeatures = "5d"\nunweight = "thin"\nseed = 7\n'
        '[a]\ncategory = "emu"\ndatasets = ["ttbar"]\n'
        '[b]\ncategory = "mue"\nvariation = "muon_scale_up1"\n'
        '[statistic]\nmethod = "symmetrized"\narchitecture = [5, 4, 1]\nmax_iter = 30\n'
        '[calibration]\nmethod = "permutations"\nn = 40\nbatch_size = 10\n'
    )
    y, t = C.load(tmp_path / "run.yaml"), C.load(tmp_path / "run.toml")
    assert y == t
    assert y.feature_names == TWO_BODY_FEATURES
    assert y.a.datasets == ["ttbar"] and y.b.variation == "muon_scale_up1"
    assert y.calibration.n == 40 and y.statistic.architecture == [5, 4, 1]
    # GeV columns enter in units of 100 GeV, angles unchanged
    assert y.feature_scale()["pt_lead"] == 0.01 and y.feature_scale()["eta_lead"] == 1.0


def test_dump_and_load_round_trip(tmp_path):
    cfg = C.from_dict({"input": "x", "features": ["m_coll", "met"], "seed": 3})
    C.dump_yaml(cfg, tmp_path / "c.yaml")
    assert C.load(tmp_path / "c.yaml") == cfg


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("seeed: 1\n", "seeed"),
        ("statistic: {methd: nplm}\n", "statistic.methd"),  # codespell:ignore methd
        ("calibration: {method: permutations, n: 10, workerz: 2}\n", "calibration.workerz"),
    ],
)
def test_unknown_keys_are_rejected_with_their_name(tmp_path, text, key):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(C.ConfigError) as err:
        C.load(path)
    assert str(path) in str(err.value) and f"{key}: unknown key" in str(err.value)


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"seed": "one"}, "seed: expected int"),
        ({"seed": True}, "seed: expected int"),
        ({"statistic": {"max_iter": 2.5}}, "statistic.max_iter: expected int"),
        ({"statistic": {"method": "lasso"}}, "statistic.method: expected"),
        ({"statistic": {"architecture": [1, "four", 1]}}, "statistic.architecture[1]"),
        ({"calibration": "permutations"}, "calibration: expected CalibrationSpec"),
        ({"scale": {"m_coll": "x"}}, "scale.m_coll"),
        ({"unweight": "yes"}, "unweight: expected"),
    ],
)
def test_wrong_types_are_rejected_with_the_key(data, key):
    with pytest.raises(C.ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        C.from_dict(data)


def test_cross_field_checks():
    with pytest.raises(C.ConfigError, match="calibration.n"):
        C.from_dict({"calibration": {"method": "toys"}})
    with pytest.raises(C.ConfigError, match="a.path and b.path"):
        C.from_dict({"a": {"path": "a.parquet"}})
    with pytest.raises(C.ConfigError, match="scale"):
        C.from_dict({"features": "m_coll", "scale": {"met": 1.0}})
    # an integer is a valid float (YAML writes 20 for 20.0)
    assert C.from_dict({"luminosity_fb": 20}).luminosity_fb == 20.0


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"features": "m_coll", "scale": {"m_coll": 0.0}}, "scale.m_coll"),  # t = 0, Z = -inf
        ({"toy": {"n_signal": float("nan")}}, "toy.n_signal"),  # silently injected nothing
        ({"toy": {"n_a": -5.0}}, "toy.n_a"),
        ({"inject": {"branching_ratio": float("nan")}}, "inject.branching_ratio"),
        ({"luminosity_fb": float("inf")}, "luminosity_fb"),
        ({"features": ["m_coll", "dphi", "m_coll"]}, "features: \\['m_coll'\\] listed twice"),
    ],
)
def test_numbers_that_make_no_sense_are_refused_naming_the_key(data, key):
    with pytest.raises(C.ConfigError, match=key):
        C.from_dict(data)


def test_a_device_that_is_not_here_is_refused_naming_the_key():
    import torch

    with pytest.raises(C.ConfigError, match="statistic.device: 'bogus' is not a torch device"):
        C.from_dict({"statistic": {"device": "bogus"}})
    absent = "cuda:64" if torch.cuda.is_available() else "cuda"
    with pytest.raises(C.ConfigError, match=f"statistic.device: '{absent}' is not available"):
        C.from_dict({"statistic": {"device": absent}})


def test_merge_applies_dotted_overrides():
    base = {"seed": 1, "calibration": {"method": "permutations", "n": 10}}
    out = C.merge(base, {"calibration.n": 50, "statistic.method": "binned"})
    assert out == {
        "seed": 1,
        "calibration": {"method": "permutations", "n": 50},
        "statistic": {"method": "binned"},
    }
    assert base["calibration"]["n"] == 10  # not modified


def test_a_side_given_in_part_keeps_its_default_category():
    """--a-variation / --a-datasets alone: A stays emu, B mue (as the help says)."""
    cfg = C.from_dict(
        C.merge({"input": "processed"}, {"a.variation": "muon_scale_up1", "b.datasets": ["ww"]})
    )
    assert (cfg.a.category, cfg.a.variation) == ("emu", "muon_scale_up1")
    assert (cfg.b.category, cfg.b.datasets) == ("mue", ["ww"])
    assert C.from_dict({"input": "p", "a": {"category": "ep_mum"}}).a.category == "ep_mum"


def test_cli_config_file_with_flag_overrides(tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        f"toy: {{n_a: 300, n_b: 300}}\nstatistic: {{max_iter: 15}}\nseed: 4\n"
        f"output: {tmp_path / 'from_file'}\n"
    )
    out = tmp_path / "from_flag"
    assert main(["test", "--config", str(cfg), "--seed", "5", "--output", str(out), "--quiet"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["seed"] == 5  # the flag wins
    assert run["config"]["statistic"]["max_iter"] == 15  # the file's value stays
    assert not (tmp_path / "from_file").exists()
    assert C.load(out / "config.yaml").seed == 5  # the result directory reruns itself


def test_cli_reports_a_bad_config_file(tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text("[statistic]\nepoch = 10\n")
    assert main(["test", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "run.toml" in err and "statistic.epoch" in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nuisances: muon_scale\n", "nuisances: expected list[str]"),
        ("input: out\nnuisances: [norm]\n", "'norm' scales A and B alike"),
        ("nuisances: [muon_scale]\n", "nuisances: learned from processor output; give input"),
        ("input: out\nnuisances: [muon_scale, muon_scale]\n", "listed twice"),
        (
            "input: out\nnuisances: [muon_scale]\nstatistic: {method: crossentropy}\n",
            "profiled by the symmetrized statistic, not 'crossentropy'",
        ),
        ("input: out\nunweight: poisson\n", "unweight: expected 'none' | 'thin', got 'poisson'"),
        ("input: out\nmap_uncertainty: maybe\n", "map_uncertainty: expected bool"),
        ("input: out\ndiagnostics: eta_lead\n", "diagnostics: expected list[str] | null"),
    ],
)
def test_nuisances_and_diagnostics_are_validated_naming_the_key(tmp_path, text, message):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(C.ConfigError, match=re.escape(message)):
        C.load(path)


def test_nuisances_pass_through_run_files(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(
        "input: out\nnuisances: [electron_scale, muon_scale, efficiency]\n"
        "diagnostics: [eta_lead, 'eta_lead:eta_sublead']\nmap_uncertainty: false\n"
    )
    cfg = C.load(path)
    assert cfg.nuisances == ["electron_scale", "muon_scale", "efficiency"]
    assert cfg.diagnostics == ["eta_lead", "eta_lead:eta_sublead"]
    assert cfg.map_uncertainty is False
    C.dump_yaml(cfg, tmp_path / "back.yaml")
    assert C.load(tmp_path / "back.yaml") == cfg


def test_run_files_and_the_library_share_their_defaults():
    """A run file, the command line and ``FitConfig()`` in Python fit the same way by
    default (StatisticSpec repeats the engine's values without importing torch)."""
    from symnplm.engine.fitting import NEWTON_MAX_ITER, FitConfig
    from symnplm.workflow.closure import ClosureSettings
    from symnplm.workflow.config import StatisticSpec
    from symnplm.workflow.demo import DemoSettings

    library, run_file = FitConfig(), StatisticSpec()
    shared = ("optimizer", "epochs", "max_iter", "clip", "record_every", "dtype", "device")
    assert {k: getattr(run_file, k) for k in shared} == {k: getattr(library, k) for k in shared}
    assert library.optimizer == "newton" and library.max_iter == NEWTON_MAX_ITER
    closure = ClosureSettings(test="t", calibration="c", outdir="o")
    assert closure.max_iter == DemoSettings().max_iter == NEWTON_MAX_ITER


def test_real_samples_are_calibrated_by_permutations_unless_told():
    from symnplm.workflow.config import DEFAULT_PERMUTATIONS

    from_dict = C.from_dict
    real = from_dict({"input": "processed"})
    assert (real.calibration.method, real.calibration.n) == ("permutations", DEFAULT_PERMUTATIONS)
    toy = from_dict({})
    assert (toy.calibration.method, toy.calibration.n) == ("asymptotic", None)
    told = from_dict({"input": "processed", "calibration": {"method": "asymptotic"}})
    assert told.calibration.method == "asymptotic"
    assert from_dict({"a": {"path": "a.parquet"}, "b": {"path": "b.parquet"}}).calibration.n == 100


@pytest.mark.parametrize(
    ("name", "text", "kind"),
    [("list.yaml", "- seed: 1\n- seed: 2\n", "list"), ("number.yml", "5\n", "int")],
)
def test_a_file_that_is_not_a_mapping_is_one_line_naming_it(tmp_path, capsys, name, text, kind):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(C.ConfigError, match=f"{re.escape(str(path))}: .*mapping.*got a {kind}"):
        C.read_dict(path)
    assert main(["test", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert str(path) in err and "mapping of keys" in err


@pytest.mark.parametrize(
    ("data", "message"),
    [
        # YAML's quoted "false" and a number are not booleans
        ({"map_uncertainty": "false"}, "map_uncertainty: expected bool, got 'false'"),
        ({"map_uncertainty": 0}, "map_uncertainty: expected bool, got 0"),
        # numbers are not strings, booleans are not numbers, floats are not integers
        ({"input": 1}, "input: expected str | null, got 1"),
        ({"a": {"datasets": ["ttbar", 2]}}, "a.datasets[1]: expected str, got 2"),
        ({"statistic": {"device": 0}}, "statistic.device: expected str, got 0"),
        ({"toy": {"n_a": True}}, "toy.n_a: expected float, got True"),
        ({"calibration": {"n": 10.0}}, "calibration.n: expected int | null, got 10.0"),
        ({"scale": {1: 0.5}}, "scale key: expected str, got 1"),
        # a list holding a bad item names the item, not the union of list and str
        ({"features": ["m_coll", 3]}, "features[1]: expected str, got 3"),
        ({"features": 3}, "features: expected list[str] | str | null, got 3"),
    ],
)
def test_values_are_not_coerced(data, message):
    with pytest.raises(C.ConfigError) as err:
        C.from_dict(data)
    assert str(err.value) == message


def test_several_unknown_keys_are_one_line():
    with pytest.raises(C.ConfigError) as err:
        C.from_dict({"statistic": {"methd": "nplm", "bins": 3, "epoch": 2}})  # codespell:ignore
    line = str(err.value)
    assert "\n" not in line
    assert line.startswith("statistic.epoch: unknown key (also ['methd']); allowed keys in ")
    assert "'max_iter'" in line


def test_configs_built_in_python_are_validated_too():
    """RunConfig(...) and dataclasses.replace (as the workflows build runs) check like files."""
    import dataclasses

    with pytest.raises(C.ConfigError, match=r"^seed: expected int, got '1'$"):
        C.RunConfig(seed="1")
    with pytest.raises(C.ConfigError, match=r"^statistic\.bins: must be >= 1, got 0$"):
        C.RunConfig(statistic={"bins": 0})
    cfg = C.RunConfig(input="processed")
    with pytest.raises(C.ConfigError, match=r"^nuisances: 'norm' scales A and B alike"):
        dataclasses.replace(cfg, nuisances=["norm"])
    with pytest.raises(C.ConfigError, match=r"^luminosity_fb: must be a positive number"):
        dataclasses.replace(cfg, luminosity_fb=-1.0)
    # a side given without a category gets its default, a given side is not modified
    a = C.SampleSpec(variation="muon_scale_up1")
    assert C.RunConfig(input="p", a=a).a.category == "emu" and a.category is None


def test_every_key_round_trips_through_to_dict():
    data = {
        "input": "out",
        "a": {"path": None, "datasets": ["ttbar", "ww"], "category": "ep_mum", "variation": "v1"},
        "b": {"path": None, "datasets": None, "category": "em_mup", "variation": "nominal"},
        "features": ["m_coll", "met"],
        "scale": {"m_coll": 0.5, "met": 2.0},
        "luminosity_fb": 12.5,
        "unweight": "thin",
        "inject": {"branching_ratio": 0.01, "datasets": ["ggh_htaue"]},
        "diagnostics": ["m_coll", "eta_lead:eta_sublead"],
        "map_uncertainty": False,
        "nuisances": ["muon_scale", "efficiency"],
        "toy": {"n_a": 300.0, "n_b": 400.0, "signal": "S2", "n_signal": 12.0},
        "statistic": {
            "method": "symmetrized",
            "architecture": [2, 3, 1],
            "optimizer": "adam",
            "epochs": 50,
            "max_iter": 7,
            "bins": 9,
            "n_starts": 3,
            "clip": 9.0,
            "record_every": 5,
            "dtype": "float64",
            "device": "cpu",
        },
        "calibration": {
            "method": "toys",
            "n": 30,
            "batch_size": 10,
            "workers": 2,
            "scheduler": "tcp://host:8786",
        },
        "seed": 11,
        "output": "res",
    }
    cfg = C.from_dict(data)
    assert cfg.to_dict() == data  # every key was read, none was changed
    assert C.from_dict(cfg.to_dict()) == cfg
