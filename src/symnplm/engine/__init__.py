"""The torch engine: replicated function families, pure losses, batched fitting.

Knows nothing about files, coffea or plotting. The statistics built on it live in
:mod:`symnplm.inference`.
"""

from symnplm.engine.fitting import FitConfig, FitResult, fit
from symnplm.engine.losses import (
    cross_entropy_loss,
    extended_likelihood_floor,
    extended_likelihood_loss,
)
from symnplm.engine.models import MLP, BinwiseFunction
from symnplm.engine.objectives import (
    CrossEntropyObjective,
    ExtendedLikelihoodObjective,
    SigmaDeltaObjective,
)

__all__ = [
    "MLP",
    "BinwiseFunction",
    "CrossEntropyObjective",
    "ExtendedLikelihoodObjective",
    "FitConfig",
    "FitResult",
    "SigmaDeltaObjective",
    "cross_entropy_loss",
    "extended_likelihood_floor",
    "extended_likelihood_loss",
    "fit",
]
