"""Module layout of inference: names keep their import paths, statistics share one fit_batch."""

import numpy as np
import pytest

from symnplm.inference import batches, binned, test_statistics
from symnplm.inference.test_statistics import (
    BatchFit,
    BinnedTest,
    CrossEntropyTest,
    NetworkTest,
    NPLMTest,
    ReplicaBatch,
    SymmetrizedTest,
    TwoSampleTest,
    quantile_edges,
)
from symnplm.io.samples import as_sample


def test_moved_names_are_the_same_objects_where_they_were():
    assert ReplicaBatch is batches.ReplicaBatch
    assert BatchFit is batches.BatchFit
    assert TwoSampleTest is batches.TwoSampleTest
    assert BinnedTest is binned.BinnedTest
    assert quantile_edges is binned.quantile_edges
    assert set(test_statistics.__all__) >= {"ReplicaBatch", "BatchFit", "BinnedTest"}


@pytest.mark.parametrize("statistic", [NPLMTest, SymmetrizedTest, CrossEntropyTest])
def test_network_statistics_inherit_the_shared_fit_batch(statistic):
    assert statistic.fit_batch is NetworkTest.fit_batch
    assert statistic._objective is not NetworkTest._objective
    assert statistic._statistic is not NetworkTest._statistic


def test_a_network_test_without_an_objective_says_so():
    class Bare(NetworkTest):
        statistic = "bare"
        dof = 0

    rng = np.random.default_rng(0)
    batch = ReplicaBatch.from_samples(as_sample(rng.random(20)), as_sample(rng.random(30)))
    with pytest.raises(NotImplementedError, match="Bare defines no objective"):
        Bare().fit_batch(batch, 0, [0])
