"""Fixtures of the engine tests."""

import numpy as np
import pytest
import torch

from symnplm.engine import MLP, ExtendedLikelihoodObjective


@pytest.fixture
def label_split():
    """``n -> (model, objective)``: two fits of the f-term (Eq. 23) on random labels.

    Events x ~ Exp(1), each labelled A with probability 1/2 in each of two units;
    reference weight 1 on every event, coefficient the unit's fraction of A.
    """

    def make(n: int) -> tuple[MLP, ExtendedLikelihoodObjective]:
        rng = np.random.default_rng(0)
        x = torch.tensor(rng.exponential(size=(n, 1)), dtype=torch.float32)
        labels = torch.tensor(rng.random((2, n)) < 0.5, dtype=torch.float32)
        m = MLP((1, 4, 1))
        return m, ExtendedLikelihoodObjective(m, x, torch.ones(n), labels.mean(1), labels)

    return make
