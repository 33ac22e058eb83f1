"""Resumable calibration campaigns on a real dask LocalCluster (no mocks)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from symnplm.engine import FitConfig
from symnplm.generation.toymodels import ToyModel
from symnplm.inference import SymmetrizedTest, calibrate, permutation_null
from symnplm.inference.results import CalibrationResult
from symnplm.workflow.campaign import Campaign, CampaignIncomplete
from symnplm.workflow.cluster import dask_client

FAST = FitConfig(optimizer="newton", max_iter=15)


@pytest.fixture(scope="module")
def samples():
    return ToyModel(250, 250, signal="S3", n_signal=40)(np.random.default_rng(11))


def _campaign(directory, samples, **kw):
    a, b = samples
    opts = {"method": "permutations", "n": 9, "seed": 3, "batch_size": 4, **kw}
    return Campaign(directory, SymmetrizedTest(fit=FAST), a, b, **opts)


def test_interrupted_campaign_resumes_without_recomputing(tmp_path, samples, local_client):
    full = _campaign(tmp_path / "full", samples).run(client=local_client)
    assert len(full) == 9 and np.all(np.isfinite(full.t))
    np.testing.assert_array_equal(full.replica_ids, np.arange(9))

    camp = _campaign(tmp_path / "cut", samples)
    with pytest.raises(CampaignIncomplete, match="2 of 3 batches"):
        camp.run(client=local_client, max_batches=1)  # "killed" after one batch
    assert camp.finished() == [(0, 4)]
    first = camp.batch_path(0, 4)
    stamp = (first.stat().st_ino, first.stat().st_mtime_ns)

    seen = []
    resumed = _campaign(tmp_path / "cut", samples).run(
        client=local_client, progress=lambda done, n: seen.append(done)
    )
    assert seen == [4, 8, 9] or seen == [4, 5, 9]  # starts from the finished batch
    assert (first.stat().st_ino, first.stat().st_mtime_ns) == stamp  # never rewritten
    np.testing.assert_array_equal(resumed.t, full.t)
    np.testing.assert_array_equal(resumed.replica_ids, full.replica_ids)


def test_campaign_matches_the_in_memory_calculator(tmp_path, samples, local_client):
    """The distributed campaign computes exactly what permutation_null computes."""
    a, b = samples
    test = SymmetrizedTest(fit=FAST)
    ref = permutation_null(test, a, b, 9, seed=3, batch_size=4)
    got = _campaign(tmp_path / "c", samples).run(client=local_client)
    np.testing.assert_array_equal(got.t, ref.t)


def test_a_directory_of_another_campaign_is_refused(tmp_path, samples, local_client):
    _campaign(tmp_path / "c", samples, n=4).run(client=local_client)
    with pytest.raises(ValueError, match="different campaign.*seed"):
        _campaign(tmp_path / "c", samples, n=4, seed=99).run(client=local_client)
    # a finished campaign reruns from disk alone: no cluster is needed
    again = _campaign(tmp_path / "c", samples, n=4).run(client=None)
    assert len(again) == 4


def test_toys_campaign_and_own_local_cluster(tmp_path, samples):
    """Without a client the campaign starts (and stops) its own LocalCluster."""
    null = _campaign(tmp_path / "t", samples, method="toys", n=4, batch_size=2).run(workers=1)
    assert null.method == "toys" and len(null) == 4
    with dask_client(1) as client:
        assert client.scheduler_info()["workers"]


def test_local_cluster_listens_on_this_machine_only():
    """The scheduler and dashboard a campaign starts listen on 127.0.0.1, not 0.0.0.0."""
    import psutil  # a dependency of distributed

    def listening() -> set[tuple[str, int]]:
        conns = psutil.Process().net_connections(kind="inet")
        return {tuple(c.laddr) for c in conns if c.status == psutil.CONN_LISTEN}

    before = listening()
    with dask_client(2) as client:
        assert client.scheduler_info()["workers"]
        opened = listening() - before
    assert opened and {host for host, _ in opened} == {"127.0.0.1"}


TOY_RUN = [
    "--n-a", "400", "--n-b", "400", "--signal", "S3", "--n-signal", "50",
    "--max-iter", "15", "--seed", "2", "--calibration", "permutations:12",
    "--batch-size", "3", "--quiet",
]  # fmt: skip


@pytest.mark.slow
def test_killed_cli_campaign_resumes_to_the_uninterrupted_result(tmp_path):
    """`symnplm test` killed (SIGKILL) after its first batch file, rerun: same result."""
    cmd = [sys.executable, "-m", "symnplm.inference", *TOY_RUN]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([*cmd, "--output", str(tmp_path / "full")], check=True, env=env)

    out = tmp_path / "cut"
    proc = subprocess.Popen([*cmd, "--output", str(out)], env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while not list((out / "campaign").glob("batch-*.npz")) and time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the process and its dask workers
    proc.wait()
    done_before = sorted((out / "campaign").glob("batch-*.npz"))
    assert 1 <= len(done_before) < 4, "the run should be killed mid-campaign"
    assert not (out / "run.json").exists()
    stamps = {p: p.stat().st_mtime_ns for p in done_before}

    subprocess.run([*cmd, "--output", str(out)], check=True, env=env)
    assert {p: p.stat().st_mtime_ns for p in done_before} == stamps
    full, resumed = CalibrationResult.load(tmp_path / "full"), CalibrationResult.load(out)
    np.testing.assert_array_equal(resumed.null.t, full.null.t)
    assert resumed.t == full.t and resumed.p_value == full.p_value


def test_calibrate_and_campaign_agree_on_p(tmp_path, samples, local_client):
    a, b = samples
    test = SymmetrizedTest(fit=FAST)
    direct = calibrate(test, a, b, method="permutations", n=9, seed=3, batch_size=4)
    null = _campaign(tmp_path / "p", samples).run(client=local_client)
    from symnplm.inference import calibrated

    assert calibrated(direct.observed, null).p_value == direct.p_value


def test_a_scheduler_that_does_not_answer_is_one_line(tmp_path, capsys):
    import dask

    from symnplm.cli import main

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        code = main(
            ["test", *TOY_RUN, "--scheduler", "tcp://127.0.0.1:9", "--output", str(tmp_path / "r")]
        )
    err = capsys.readouterr().err
    assert code == 2 and "tcp://127.0.0.1:9" in err and "Traceback" not in err


def test_cli_campaign_on_an_existing_scheduler(tmp_path, local_client, capsys):
    """`--scheduler ADDRESS` sends the batches to a running cluster."""
    from distributed import get_task_stream

    from symnplm.cli import main

    address = local_client.scheduler.address
    with get_task_stream(client=local_client) as stream:
        code = main(["test", *TOY_RUN, "--scheduler", address, "--output", str(tmp_path / "r")])
    assert code == 0
    assert "12 replicas" in capsys.readouterr().out
    ran = [t["key"] for t in stream.data if "symnplm-batch" in str(t["key"])]
    assert len(ran) == 4  # 12 permutations in batches of 3, all on that cluster
