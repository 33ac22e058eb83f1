"""Inference: test statistics and their calibration into p-values (pyhf-style split).

>>> from symnplm.inference import SymmetrizedTest, calibrate
>>> test = SymmetrizedTest((1, 4, 1))
>>> result = calibrate(test, a, b, method="permutations", n=200)  # doctest: +SKIP
>>> result.t, result.p_value, result.z  # doctest: +SKIP
"""

from symnplm.inference.calculators import (
    METHODS,
    calibrate,
    calibrated,
    permutation_null,
    toy_null,
)
from symnplm.inference.results import CalibrationResult, NullDistribution, TestResult
from symnplm.inference.significance import (
    Chi2Fit,
    asymptotic_pvalue,
    asymptotic_z,
    empirical_pvalue,
    fit_chi2_dof,
    p_to_z,
    z_to_p,
)
from symnplm.inference.test_statistics import (
    STATISTICS,
    BinnedTest,
    CrossEntropyTest,
    NPLMTest,
    ReplicaBatch,
    SymmetrizedTest,
    TwoSampleTest,
    quantile_edges,
)

__all__ = [
    "METHODS",
    "STATISTICS",
    "BinnedTest",
    "CalibrationResult",
    "Chi2Fit",
    "CrossEntropyTest",
    "NPLMTest",
    "NullDistribution",
    "ReplicaBatch",
    "SymmetrizedTest",
    "TestResult",
    "TwoSampleTest",
    "asymptotic_pvalue",
    "asymptotic_z",
    "calibrate",
    "calibrated",
    "empirical_pvalue",
    "fit_chi2_dof",
    "p_to_z",
    "permutation_null",
    "quantile_edges",
    "toy_null",
    "z_to_p",
]
