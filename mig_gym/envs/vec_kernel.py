"""Dispatch-v0's step compiled (numba) for N environments at once, for :mod:`mig_gym.envs.vec_core`.

One call applies every packed environment's action to its pending query and runs its simulator
to the next query that needs a choice, as :class:`~mig_gym.envs.dispatch.DispatchEnv` does with
:meth:`~mig_gym.sim.simulator.Simulator.next_query` and ``dispatch``: completions before an
arrival at the same instant; an arrival whose batch no partition of the plan can hold is
rejected, one that no available partition can take now is held, the others are the next
decision. Then it writes the observation row and the mask as :class:`~mig_gym.envs.slots.SlotBank`
would (the same float64 arithmetic, cast to float32), and the reward counters (violations,
measured completions, per-model latency sums in completion order) as the recorder counts them.
The simulator's state is the compiled event core's (:mod:`mig_gym.sim.event_kernel`, whose
helpers do the queueing); an environment's arrays are row ``e`` of the stacked ones.

Status per environment: 0 a decision is pending (observation written), 1 its arrival block is
used up, 2 no free query slot, 3 its outcome buffers are full (the caller acts and calls again
with ``stage`` 1: the action was applied).
This module imports numba: it is imported only when a vector environment packs its episodes.
"""

from __future__ import annotations

import math

import numpy as np

from mig_gym.envs.dispatch import _RATE_TAU_S as _TAU  # the arrival-rate time constant
from mig_gym.sim.event_kernel import _choose, _complete, _heap_pop, dispatch
from mig_gym.sim.jit import jit

__all__ = ["vec_step"]

DECISION, BLOCK_END, NO_ROOM, FLUSH = 0, 1, 2, 3


@jit(inline=True)
def _observe(e, s, obs, mask, slot_row, slot_static, pf, pi, lat, qf, qi, ctr, clock, sizes):
    """Row ``e``'s observation and mask for its pending query in slot ``s``."""
    n_slots, n_models, max_batch = int(sizes[0]), int(sizes[1]), int(sizes[2])
    clip, n_total, mean_rate = sizes[3], int(sizes[4]), sizes[5]
    m, b, now = qi[s, 1], qi[s, 2], clock[0]
    slo = clock[4 + m]
    o = obs[e]
    for k in range(n_slots):
        base = 6 * k
        if slot_static[k, 0] == 0.0:  # no partition in this slot
            for c in range(6):
                o[base + c] = 0.0
            mask[e, k] = False
            continue
        j = slot_row[k]
        est = pf[j, 0] if j >= 0 else slot_static[k, 3]
        x = est - now
        if x < 0.0:
            x = 0.0
        x = x / slo
        ell = np.inf
        ok = False
        if slot_static[k, 2] != 0.0 and slot_static[k, 1] == m and j >= 0:
            ell = lat[pi[j, 0], b]
            ok = ell < np.inf
            ell = ell / slo
        o[base] = slot_static[k, 0]
        o[base + 1] = 1.0 if slot_static[k, 1] == m else 0.0
        o[base + 2] = x if x < clip else clip
        y = x + ell
        o[base + 3] = y if y < clip else clip
        o[base + 4] = slot_static[k, 2]
        qn = (pi[j, 5] if j >= 0 else 0) / 10.0
        o[base + 5] = qn if qn < clip else clip
        mask[e, k] = ok
    k = 6 * n_slots
    o[k] = b / max_batch
    w = (now - qf[s, 0]) / slo
    o[k + 1] = w if w < clip else clip
    o[k + 2] = m / n_models
    for c in range(n_models):
        o[k + 3 + c] = 1.0 if c == m else 0.0
    k += 3 + n_models
    r = clock[2] / mean_rate
    o[k] = r if r < clip else clip
    a = ctr[2] / n_slots
    o[k + 1] = a if a < clip else clip
    p = ctr[12] / n_total
    o[k + 2] = p if p < 1.0 else 1.0


@jit
def vec_step(fresh, active, stage, acts, invalid, status, sizes, warmup, servable,
             bt, bm, bb, blen, pf, pi, cls_off, cls_size, lat, ch, hp_off, qf, qi, slots,
             hx, hs, hp, hq, ctr, clock, lat_sum, out_f, out_i, rej_f, rej_i, held,
             slot_row, slot_static, any_ok, obs, mask, book, weights, reward):  # fmt: skip
    """One step of every ``active`` environment (see the module docstring); ``fresh``: a new
    step (every action still to apply). Returns how many stopped before their decision."""
    n_slots = int(sizes[0])
    cap = out_f.shape[1] - 1  # one row kept for the held query of an action
    stopped = 0
    for e in range(active.shape[0]):
        if fresh:
            stage[e] = 0
        if not active[e]:
            continue
        pfe, pie, lte, che, hpo, qfe, qie = pf[e], pi[e], lat[e], ch[e], hp_off[e], qf[e], qi[e]
        ce, cle, co, cs = ctr[e], clock[e], cls_off[e], cls_size[e]
        heap = (hx[e], hs[e], hp[e], hq[e])
        if stage[e] == 0:  # the action, on the pending query
            s, a = ce[11], acts[e]
            m, b = qie[s, 1], qie[s, 2]
            j = slot_row[e, a] if 0 <= a < n_slots and mask[e, a] else -1
            invalid[e] = j < 0
            if j < 0:  # remapped to the earliest-finish valid partition
                j = _choose(0, co, cs, lte, che, hpo, pfe, 0.0, 0, m, b, cle[0])
            dispatch(pfe, pie, che, hpo, lte, qfe, qie, heap, ce, False, cle[0], s, j, held[e])
            ce[11] = -1
            stage[e] = 1
        status[e] = _advance(e, ce, cle, pfe, pie, che, hpo, co, cs, lte, qfe, qie, slots[e],
                             heap, bt[e], bm[e], bb[e], blen[e], servable[e], warmup[e],
                             lat_sum[e], out_f[e], out_i[e], rej_f[e], rej_i[e], held[e], cap,
                             any_ok[e])  # fmt: skip
        if status[e] != DECISION:
            stopped += 1
            continue
        tot = 0.0  # the latency term's sum of latency / SLA, in model order (RewardBook)
        for m in range(lat_sum.shape[1]):
            tot += lat_sum[e, m] / cle[4 + m]
        cle[cle.shape[0] - 1] = tot
        reward[e] = _reward(book[e], weights, ce[13], ce[14], tot, invalid[e])
        _observe(e, ce[11], obs, mask, slot_row[e], slot_static[e], pfe, pie, lte, qfe, qie, ce,
                 cle, sizes)  # fmt: skip
    return stopped


@jit(inline=True)
def _reward(book, w, viol_count, measured, lat, bad):
    """``RewardBook.step`` without a summary: ``book`` holds its last counters (violations,
    measured completions, latency sum), the violation terms paid and the scale; ``w`` the
    weights (violation, latency, reconfiguration, invalid action)."""
    viol = float(-(viol_count - int(book[0]))) * book[4]
    book[3] += viol
    latency = lat - book[2]
    book[0], book[1], book[2] = viol_count, measured, lat
    return w[0] * viol + w[1] * -latency + w[2] * -0.0 + w[3] * -(1.0 if bad else 0.0)


@jit(inline=True)
def _advance(e, ce, cle, pf, pi, ch, hp_off, cls_off, cls_size, lat, qf, qi, slots, heap,
             bt, bm, bb, nb, servable, warmup, lat_sum, out_f, out_i, rej_f, rej_i, held, cap,
             any_ok):  # fmt: skip
    """``Simulator.next_query`` and ``DispatchEnv._next_query`` up to the next decision."""
    hx, hs, hp, hq = heap
    while True:
        i = ce[9]
        if i == nb:
            return BLOCK_END
        t = bt[i]
        if ce[4] > 0 and hx[0] <= t:  # a completion first (heap events first on ties)
            if ce[6] >= cap:
                return FLUSH
            now = hx[0]
            j, s = hp[0], hq[0]
            _heap_pop(hx, hs, hp, hq, ce)
            cle[0] = now
            if j < 0 or pi[j, 2] != s:
                continue
            _complete(pf, pi, ch, hp_off, lat, qf, qi, heap, ce, False, now, j, s, slots,
                      out_f, out_i)  # fmt: skip
            n = ce[6] - 1
            if out_i[n, 0] >= warmup:
                m = out_i[n, 1]
                d = out_f[n, 0] - out_f[n, 1]
                ce[14] += 1
                ce[13] += d > cle[4 + m]
                lat_sum[m] += d
            continue
        st = _arrival(ce, cle, qf, qi, slots, bt[i], bm[i], bb[i], servable, warmup, rej_f,
                      rej_i, cap, any_ok, held)  # fmt: skip
        if st >= 0:
            return st


@jit(inline=True)
def _arrival(ce, cle, qf, qi, slots, t, m, b, servable, warmup, rej_f, rej_i, cap, any_ok, held):
    """The next arrival: rejected, held or the pending decision (``DECISION``); a status if it
    cannot be taken yet (no free slot, full buffers), else -1 (go on)."""
    if ce[5] == 0:
        return NO_ROOM
    if ce[7] >= cap or ce[8] >= cap:
        return FLUSH
    qid = ce[1]
    ce[1] = qid + 1
    ce[9] += 1
    cle[0] = cle[1] = t
    ce[2] += 1
    ce[12] += 1
    if b > servable[m]:  # Server._reject
        n = ce[7]
        rej_f[n] = t
        rej_i[n, 0], rej_i[n, 1] = qid, m
        ce[7] = n + 1
        ce[2] -= 1
        if qid >= warmup:
            ce[13] += 1
        return -1
    ce[5] -= 1
    s = slots[ce[5]]
    qf[s, 0], qf[s, 1] = t, 1.0
    qi[s, 0], qi[s, 1], qi[s, 2], qi[s, 3] = qid, m, b, -1
    dt = t - cle[3]
    cle[3] = t
    cle[2] = cle[2] * math.exp(-dt / _TAU) + 1.0 / _TAU
    if b < any_ok.shape[1] and any_ok[m, b]:
        ce[11] = s
        return DECISION
    held[ce[8]] = s  # nothing can take it now: held until capacity returns
    ce[8] += 1
    return -1
