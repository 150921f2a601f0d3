"""Dispatch-v0's per-step observation columns compiled (numba), for :mod:`mig_gym.envs.slots`.

Each step recomputes, for every slot of every row, the backlog and the estimated completion of
the pending query (observation columns ``6i+2`` and ``6i+3``) and the action mask. In numpy
that is eight small array operations, about 4 us of call overhead for a few hundred flops; this
kernel does the same arithmetic in one call, operation for operation (no fast-math: identical
float64 values, cast to float32 as numpy's assignment casts them, NaN propagated as numpy's
``maximum``/``minimum`` would). :class:`~mig_gym.envs.slots.SlotBank` uses it where numba is
installed (the ``fast`` extra) and its numpy pass otherwise; tests/test_dispatch_fast.py checks
the two give the same observations and masks.

This module imports numba: the bank imports it only when numba is installed.
"""

from __future__ import annotations

from mig_gym.sim.jit import jit

__all__ = ["columns"]


@jit
def columns(est, now, slo, los, ok, model, batch, blk, mask, clip):
    """For each row ``r`` (model ``m``, batch ``b``) and slot ``i``: ``blk[r, i, 2 + c] =
    min(max(est[r, i, c] - now[r], 0) / slo[r] + los[r, m, b, i, c], clip)`` and
    ``mask[r, i] = ok[r, m, b, i]``."""
    for r in range(est.shape[0]):
        m, b, t, s = model[r], batch[r], now[r], slo[r]
        for i in range(est.shape[1]):
            for c in range(2):
                x = est[r, i, c] - t
                if x < 0.0:  # (NaN stays NaN, as with np.maximum)
                    x = 0.0
                x = x / s + los[r, m, b, i, c]
                if x > clip:
                    x = clip
                blk[r, i, 2 + c] = x
            mask[r, i] = ok[r, m, b, i]
