"""The Newton loop on the device: masked stopping, the damping search, host synchronisations."""

import math

import numpy as np
import pytest
import torch

from symnplm.engine import MLP, ExtendedLikelihoodObjective, FitConfig, fit, newton
from symnplm.engine.bookkeeping import HostSyncs


class UnitByUnit:
    """An objective evaluated one unit at a time, so that no unit's arithmetic depends on
    which other units share its batch (batched matrix products round differently for
    different batch sizes). What remains to differ between two runs is the loop itself.
    """

    def __init__(self, inner: ExtendedLikelihoodObjective) -> None:
        self.inner = inner
        self.n_units = inner.n_units
        self.n_events = inner.n_events

    @property
    def shapes(self):
        return self.inner.shapes

    @property
    def width(self):
        return self.inner.width

    def _each(self, method, params, units, *args):
        units = torch.arange(self.n_units, device=params[0].device) if units is None else units
        parts = [
            method([p[i : i + 1] for p in params], units[i : i + 1], *args)
            for i in range(len(units))
        ]
        return tuple(torch.cat(column) for column in zip(*parts))

    def loss(self, params, units, events):
        return self._each(self.inner.loss, params, units, events)

    def newton_terms(self, params, units, events, exact=True):
        return self._each(self.inner.newton_terms, params, units, events, exact)

    def clip_(self, params, bound, clip_biases):
        self.inner.clip_(params, bound, clip_biases)

    def floor(self):
        return self.inner.floor()

    def max_log_ratio(self):
        return self.inner.max_log_ratio()


def _mixed_stops(device, units=8, n=300, seed=1):
    """1-4-1 NPLM fits that stop for every reason at different iterations.

    x ~ Exp(1), the reference only below 2.5; the last unit also has data above it,
    where the unbounded NPLM loss runs away (Sec. II A 2), so it diverges.
    """
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.exponential(size=(n, 1)), device=device)
    ref = (x[:, 0] < 2.5).double()
    data = torch.tensor(rng.random((units, n)) < 0.5, dtype=torch.float64, device=device)
    data[:-1] *= ref
    m = MLP((1, 4, 1))
    obj = ExtendedLikelihoodObjective(m, x, ref, data.sum(1) / ref.sum(), data)
    return m, UnitByUnit(obj)


def test_results_do_not_depend_on_the_sync_interval(monkeypatch, device):
    """Units that stop between two synchronisations stay in the batch but must not move.

    With a synchronisation every iteration they leave the batch at once; every 7
    iterations they spend up to 6 more in it, masked. Parameters, losses, flags,
    iteration counts and the recorded history must be the same (to rounding).
    """
    m, obj = _mixed_stops(device)
    # a loose stall rule, so that the fits stop within a few tens of iterations
    cfg = FitConfig(
        optimizer="newton",
        dtype="float64",
        backend="eager",
        device=device,
        max_iter=60,
        record_every=3,
        tol=1e-4,
        ftol=3e-3,
        patience=5,
    )
    runs = {}
    params = m.init(list(range(obj.n_units)), dtype=torch.float64)
    for k in (1, 7):
        monkeypatch.setitem(newton.SYNC_EVERY, device, k)
        runs[k] = fit(obj, params, cfg)
    a, b = runs[1], runs[7]
    # the case covers every way of stopping, at iterations that are not multiples of 7
    assert a.diverged.sum() == 1 and 0 < a.converged.sum() < obj.n_units - 1
    assert (a.steps == cfg.max_iter).any() and len(set(a.steps.tolist())) >= 5
    assert any(s % 7 for s in a.steps[a.steps < cfg.max_iter])
    # the same arithmetic per unit, but torch's batched products may block a batch of
    # fewer units differently: equal to rounding (a masked unit that moved would differ
    # by its step, orders of magnitude more)
    close = {"rtol": 1e-7, "atol": 1e-12}
    np.testing.assert_allclose(b.loss, a.loss, **close)
    np.testing.assert_array_equal(b.steps, a.steps)
    np.testing.assert_array_equal(b.converged, a.converged)
    np.testing.assert_array_equal(b.diverged, a.diverged)
    np.testing.assert_allclose(b.grad_norm, a.grad_norm, rtol=1e-5, atol=1e-9)
    np.testing.assert_array_equal(b.history_steps, a.history_steps)
    np.testing.assert_allclose(b.history_loss, a.history_loss, **close)
    for p, q in zip(a.params, b.params):
        torch.testing.assert_close(p, q, rtol=1e-3, atol=1e-6)  # flat valleys amplify rounding


def _sequential_search(g, hess, lam):
    """The damping search as a plain loop, one unit at a time: λ ×10 until H + λD is PD."""
    diag = hess.diagonal(dim1=1, dim2=2).abs()
    diag = torch.maximum(diag, 1e-8 * diag.amax(1, keepdim=True).clamp_min(1e-30))
    steps, failed, used = [], [], []
    for u in range(g.shape[0]):
        lam_u = lam[u].clone()
        step, ok = torch.zeros_like(g[u]), False
        for _ in range(newton.MAX_DAMPING_TRIES):
            chol, info = torch.linalg.cholesky_ex(hess[u] + lam_u * torch.diag(diag[u]))
            if info == 0:
                step, ok = torch.cholesky_solve(-g[u, :, None], chol)[:, 0], True
                break
            lam_u = lam_u * 10.0
        steps.append(step)
        failed.append(not ok)
        used.append(lam_u)
    return torch.stack(steps), torch.tensor(failed), torch.stack(used)


def test_damping_search_equals_the_sequential_one():
    """The bisection over tries picks, for every unit, the sequence's first PD damping.

    Indefinite Hessians whose most negative eigenvalue needs 0 to 12 tenfold
    increases, dampings from 1e-30 to 1, a PD one, one that no damping within the
    tries fixes (-I with a tiny λ) and one with a NaN: same λ', steps bit for bit.
    """
    gen = torch.Generator().manual_seed(5)
    n_par, u = 6, 40
    q, _ = torch.linalg.qr(torch.randn(u, n_par, n_par, generator=gen, dtype=torch.float64))
    eig = torch.rand(u, n_par, generator=gen, dtype=torch.float64) + 0.1
    eig[:, 0] = -(10.0 ** torch.linspace(-6, 3, u, dtype=torch.float64))
    eig[0, 0] = 0.5  # positive definite
    hess = q @ torch.diag_embed(eig) @ q.mT
    hess = 0.5 * (hess + hess.mT)
    hess[1] = -torch.eye(n_par, dtype=torch.float64)
    hess[2, 0, 0] = math.nan
    g = torch.randn(u, n_par, generator=gen, dtype=torch.float64)
    lam = 10.0 ** torch.linspace(-30, 0, u, dtype=torch.float64)
    lam[1] = 1e-50  # needs 50 tries: more than MAX_DAMPING_TRIES
    step, failed, used = newton._damped_step(g, hess, lam)
    ref_step, ref_failed, ref_used = _sequential_search(g, hess, lam)
    assert ref_failed.tolist() == [False, True, True] + [False] * (u - 3)
    assert len(set(torch.log10(ref_used / lam).round().tolist())) >= 8  # tries vary
    assert torch.equal(failed, ref_failed)
    assert torch.equal(used, ref_used)
    assert torch.equal(step, ref_step)


@pytest.mark.parametrize("record_every", [1, 4])
def test_newton_loop_waits_for_the_device_only_at_sync_points(monkeypatch, device, record_every):
    """Count what would make the host wait for a GPU (copies to the host, reads of values,
    value-dependent shapes) over 40 iterations of a fit that runs them all.

    Against a fit of 0 iterations (set-up and the final copies), the loop may add at
    most 3 per synchronisation (the compaction, the recorded losses and their copy to
    numpy), none per iteration. With a synchronisation per iteration the same count
    grows with every iteration, so the counter does see per-iteration round trips.
    On CUDA the same bound holds for the synchronisations torch itself reports.
    """
    rng = np.random.default_rng(0)
    n, units = 500, 4
    x = torch.tensor(rng.exponential(size=(n, 1)), device=device)
    labels = torch.tensor(rng.random((units, n)) < 0.5, dtype=torch.float64, device=device)
    m = MLP((1, 4, 1))
    obj = ExtendedLikelihoodObjective(
        m, x, torch.ones(n, dtype=torch.float64, device=device), labels.mean(1), labels
    )

    def count(max_iter, k):
        monkeypatch.setitem(newton.SYNC_EVERY, device, k)
        cfg = FitConfig(
            optimizer="newton",
            dtype="float64",
            backend="eager",
            device=device,
            max_iter=max_iter,
            record_every=record_every,
        )
        params = m.init(list(range(units)), dtype=torch.float64)
        with HostSyncs(device) as syncs:
            res = fit(obj, params, cfg)
        return np.array([syncs.total, syncs.cuda_syncs or 0]), res

    base, _ = count(0, 10)
    total, res = count(40, 10)
    assert (res.steps == 40).all()  # no unit stopped: the loop ran all iterations
    assert (total - base <= 3 * math.ceil(40 / 10)).all(), total - base
    every, _ = count(40, 1)
    assert every[0] - base[0] >= 40
