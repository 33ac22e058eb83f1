import numpy as np
import pytest

from symnplm.io.samples import Sample


def test_parquet_roundtrip(tmp_path):
    rng = np.random.default_rng(1)
    s = Sample(rng.normal(size=(50, 2)), rng.uniform(0.5, 2, 50), ["a", "b"], {"seed": 1}, "A")
    path = s.to_parquet(tmp_path / "a.parquet")
    r = Sample.from_parquet(path)
    np.testing.assert_array_equal(r.features, s.features)
    np.testing.assert_array_equal(r.weights, s.weights)
    assert r.names == ("a", "b") and r.name == "A" and r.provenance["seed"] == 1
    assert Sample.from_parquet(path, ["b"]).dim == 1
    # nothing but the final file is left behind by the atomic write
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.parquet"]


@pytest.mark.parametrize(
    ("features", "weights", "match"),
    [
        (np.zeros((0, 1)), None, "empty"),
        ([[0.0], [np.nan]], None, "non-finite value"),
        ([[0.0], [1.0]], [1.0], "weights have shape"),
        ([[0.0], [1.0]], [1.0, np.inf], "weight of event 1"),
        ([[0.0], [1.0]], [1.0, -1.0], "total weight is 0.0"),
        (np.zeros((2, 2, 2)), None, "shape"),
    ],
)
def test_bad_input_names_the_problem(features, weights, match):
    with pytest.raises(ValueError, match=match):
        Sample(features, weights, name="A")


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.parquet"):
        Sample.from_parquet(tmp_path / "nope.parquet")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="bad.parquet"):
        Sample.from_parquet(bad)


def test_written_files_get_normal_permissions(tmp_path):
    import os
    import stat

    path = Sample([1.0, 2.0]).to_parquet(tmp_path / "p.parquet")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
