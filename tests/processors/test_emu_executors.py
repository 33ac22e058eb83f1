"""Iterative, futures and dask executors give the same output (chunks in any order)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from handmade_nanoaod import Event, Lepton, write_fileset, write_nanoaod

from symnplm.io.booking import read_hists
from symnplm.io.samples import load_sample, read_manifest
from symnplm.processors.emu import EMuProcessor
from symnplm.processors.runner import process_fileset

SEED = 20240109


def random_events(rng: np.random.Generator, n: int) -> list[Event]:
    """Mostly e-mu events near the cuts, so that variations make events migrate."""

    def lepton():
        return Lepton(
            pt=float(rng.uniform(12, 90)),
            eta=float(rng.uniform(-2.5, 2.5)),
            phi=float(rng.uniform(-np.pi, np.pi)),
            charge=int(rng.choice([-1, 1])),
            iso=float(rng.uniform(0, 0.2)),
            ident=int(rng.choice([2, 4, 4, 4])),
        )

    events = []
    for _ in range(n):
        electrons = [lepton() for _ in range(rng.choice([0, 1, 1, 1, 2]))]
        muons = [lepton() for _ in range(rng.choice([0, 1, 1, 1, 2]))]
        jets = [
            (float(rng.uniform(20, 80)), float(rng.uniform(-5, 5)), float(rng.uniform(-3, 3)))
            for _ in range(rng.integers(0, 4))
        ]
        met = (float(rng.exponential(30)), float(rng.uniform(-np.pi, np.pi)))
        events.append(
            Event(electrons, muons, met, jets, gen_weight=float(rng.choice([1.0, -1.0, 2.0])))
        )
    return events


@pytest.fixture(scope="module")
def random_fileset(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("executors")
    rng = np.random.default_rng(SEED)
    files = [
        write_nanoaod(tmp / f"f{i}.root", random_events(rng, 120), first_event=1000 * i)
        for i in range(3)
    ]
    data = write_nanoaod(tmp / "data.root", random_events(rng, 80), mc=False)
    return write_fileset(
        tmp / "fileset.json",
        {
            "bkg": {"files": files, "metadata": {"xsec": 3.5}},
            "data": {"files": [data], "metadata": {"is_data": True}},
        },
    )


def test_three_executors_agree(random_fileset, tmp_path):
    from distributed import Client, LocalCluster

    proc = EMuProcessor(luminosity_fb=0.5, scale_nus=[-2.0, 2.0], norm_nus=[1.0])
    runs = {}
    timing = {}
    # small chunks (6 for bkg, 2 for data), finished in any order by the parallel executors
    options = {"chunksize": 60}
    start = time.perf_counter()
    runs["iterative"] = process_fileset(random_fileset, tmp_path / "iterative", proc, **options)
    timing["iterative"] = time.perf_counter() - start
    start = time.perf_counter()
    runs["futures"] = process_fileset(
        random_fileset, tmp_path / "futures", proc, executor="futures", workers=2, **options
    )
    timing["futures"] = time.perf_counter() - start
    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        with Client(cluster) as client:
            start = time.perf_counter()
            runs["dask"] = process_fileset(
                random_fileset, tmp_path / "dask", proc, executor="dask", client=client, **options
            )
            timing["dask"] = time.perf_counter() - start
    print("executor timings (s):", {k: round(v, 2) for k, v in timing.items()})

    reference = runs["iterative"]
    assert sum(reference.counts().values()) > 60  # the comparison is not between empty outputs
    assert reference.counts("electron_scale_up2") != reference.counts()  # events migrate
    for name in ("futures", "dask"):
        run = runs[name]
        assert run.cutflow == reference.cutflow
        assert [
            (s["dataset"], s["category"], s["variation"], s["n_events"]) for s in run.samples
        ] == [
            (s["dataset"], s["category"], s["variation"], s["n_events"]) for s in reference.samples
        ]
        for entry in reference.samples:
            if not entry["n_events"]:
                continue
            key = (entry["dataset"], entry["category"], entry["variation"])
            ref = load_sample(tmp_path / "iterative", *key)
            got = load_sample(tmp_path / name, *key)
            np.testing.assert_allclose(got.features, ref.features, rtol=1e-12, atol=0)
            np.testing.assert_allclose(got.weights, ref.weights, rtol=1e-12, atol=0)
        h_ref, h_got = read_hists(tmp_path / "iterative"), read_hists(tmp_path / name)
        assert h_ref.keys() == h_got.keys()
        for hname, h in h_ref.items():
            other = h_got[hname]
            # growing category axes may list their entries in another order: compare by name
            assert {a.name: set(a) for a in h.axes[:3]} == {a.name: set(a) for a in other.axes[:3]}
            for dataset in h.axes["dataset"]:
                for category in h.axes["category"]:
                    for variation in h.axes["variation"]:
                        sel = {"dataset": dataset, "category": category, "variation": variation}
                        np.testing.assert_allclose(
                            other[sel].view(flow=True).value,
                            h[sel].view(flow=True).value,
                            rtol=1e-12,
                            atol=1e-9,
                        )
        assert read_manifest(tmp_path / name)["executor"]["name"] == name


def test_a_relative_output_folder_is_where_the_caller_means(random_fileset, tmp_path, monkeypatch):
    """Worker processes may run in another working directory: a relative output folder
    is the caller's, wherever the workers write from."""
    import os

    from distributed import Client, LocalCluster

    monkeypatch.chdir(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    proc = EMuProcessor(luminosity_fb=0.5, scale_nus=[], normalisation=None)
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
        ) as c,
        Client(c) as client,
    ):
        client.run(os.chdir, str(tmp_path / "elsewhere"))
        report = process_fileset(random_fileset, "out", proc, executor="dask", client=client)
    assert sum(report.counts().values()) > 0
    assert not (tmp_path / "elsewhere" / "out").exists()
    total = sum(len(load_sample("out", d, c)) for d, c in report.counts())
    assert total == sum(report.counts().values())
