"""Fixtures of the workflow tests: a small processor output written without coffea."""

from __future__ import annotations

import numpy as np
import pytest

from symnplm.io.booking import write_hists
from symnplm.io.files import write_json
from symnplm.io.samples import Sample, sample_path
from symnplm.physics.kinematics import EMU_COLUMNS
from symnplm.processors.histograms import book_histograms, fill_histograms

#: dataset -> (metadata, events per category, weight)
DATASETS = {
    "ttbar": ({"xsec": 50.0, "sumw": 1.0, "luminosity_fb": 5.0, "is_signal": False}, 400, 1.6),
    "ztautau": ({"xsec": 200.0, "sumw": 1.0, "luminosity_fb": 5.0, "is_signal": False}, 300, 1.0),
    "ggh_htaue": (
        {
            "xsec": 0.1,
            "sumw": 1.0,
            "luminosity_fb": 20.0,
            "is_signal": True,
            "lfv_branching_ratio": 0.01,
        },
        200,
        0.25,
    ),
}
CATEGORIES = ("emu", "mue")
VARIATIONS = ("nominal", "muon_scale_up1", "muon_scale_down1")


def _columns(rng: np.random.Generator, n: int, shift: float) -> dict[str, np.ndarray]:
    cols = {c: rng.normal(size=n) for c in EMU_COLUMNS}
    cols["m_coll"] = rng.gamma(4.0, 30.0, size=n) + shift
    cols["m_ll"] = 0.7 * cols["m_coll"]
    cols["pt_lead"] = 30 + rng.exponential(30.0, size=n)
    cols["pt_sublead"] = 15 + rng.exponential(15.0, size=n)
    cols["met"] = rng.exponential(30.0, size=n)
    cols["dphi"] = rng.uniform(0, np.pi, size=n)
    cols["n_jets"] = rng.integers(0, 4, size=n).astype(float)
    for lep in ("lead", "sublead", "e", "mu"):
        cols[f"eta_{lep}"] = rng.uniform(-2.3, 2.3, size=n)
        cols[f"phi_{lep}"] = rng.uniform(-np.pi, np.pi, size=n)
    cols["pt_e"], cols["pt_mu"] = cols["pt_lead"], cols["pt_sublead"]
    return cols


def write_processed(outdir, seed: int = 0):
    """A processor output (manifest, parquet samples, hists.json) as `symnplm process` writes."""
    rng = np.random.default_rng(seed)
    hists = book_histograms()
    samples = []
    for dataset, (meta, n, weight) in DATASETS.items():
        for category in CATEGORIES:
            for variation in VARIATIONS:
                # the signal H -> tau e lands mostly in emu; its m_coll peaks at 125 GeV
                size = n if not meta["is_signal"] or category == "emu" else n // 4
                cols = _columns(rng, size, 0.0)
                if meta["is_signal"]:
                    cols["m_coll"] = rng.normal(125.0, 8.0, size=size)
                w = np.full(size, weight)
                fill_histograms(hists, dataset, category, variation, cols, w)
                s = Sample(
                    np.stack([cols[c] for c in EMU_COLUMNS], axis=1),
                    w,
                    EMU_COLUMNS,
                    {"dataset": dataset},
                    f"{dataset}/{category}/{variation}",
                )
                path = sample_path(outdir, dataset, category, variation)
                s.to_parquet(path)
                samples.append(
                    {
                        "dataset": dataset,
                        "category": category,
                        "variation": variation,
                        "path": str(path.relative_to(outdir)),
                        "n_events": size,
                        "sum_weights": float(w.sum()),
                        "files": [],
                    }
                )
    write_hists(outdir, hists)
    write_json(
        outdir / "manifest.json",
        {
            "config": {"luminosity_pb": 5000.0},
            "columns": list(EMU_COLUMNS),
            "hists": "hists.json",
            "fileset": {d: {"files": {}, "metadata": m} for d, (m, _, _) in DATASETS.items()},
            "samples": samples,
        },
    )
    return outdir


@pytest.fixture(scope="session")
def processed(tmp_path_factory):
    """A small processor output: ttbar, ztautau (background) and ggh_htaue (signal)."""
    return write_processed(tmp_path_factory.mktemp("processed"))


@pytest.fixture(scope="module")
def local_client():
    """A real dask LocalCluster: one single-threaded worker in this process."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client
