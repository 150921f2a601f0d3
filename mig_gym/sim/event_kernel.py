"""The event loop's push mode compiled (numba): the stretch between two Python-handled instants.

:mod:`mig_gym.sim.event_core` hands this kernel the server's state as flat arrays whenever the
next thing to happen is an arrival or a completion, and takes it back before the next failure,
recovery, reconfiguration, epoch or drained GPU (those stay the simulator's own Python code).
In between, the kernel is :class:`~mig_gym.sim.simulator.Simulator`'s loop operation for
operation: completions (``(end, seq)`` order) before arrivals at the same instant; an arrival is
rejected (its batch fits no partition of the plan), sent by the rule to a partition (started
if it is idle, else queued), or held (no available partition can take it); a completion starts
the partition's next queued query or leaves it idle. Service-time noise multiplies each
service's profiled time; the estimated free times follow ``Server._start`` and
``Server.dispatch`` exactly, so a rule sees what it sees in Python.

Arrays (packed by :class:`mig_gym.sim.event_core.EventCore`):

- ``pf[j]``: partition ``j``'s estimated free time, queued profiled work, start and end of its
  running service; ``pi[j]``: its class (-1: not taking work, a draining GPU's), uid, running
  query slot (-1: none), queue head and tail slots, queue length, size (GPCs), position in its
  class's heap;
- classes (per model smallest size first, ``cls_off[m]`` to ``cls_off[m + 1]``): ``cls_size``,
  ``lat[c, batch]`` (inf where the batch does not fit) and a binary heap of the class's
  partitions in ``ch[hp_off[c]:hp_off[c + 1]]`` keyed ``(busy, estimated free time, uid)``: the
  top is the simulator's ``ClassIndex.best()`` (longest idle, else free soonest; ties to the
  lowest uid);
- queries in the system sit in slots: ``qf[s]`` arrival and noise factor, ``qi[s]`` id, model,
  batch and the next slot in its partition's queue; ``slots`` is the stack of free ones;
- the completion heap ``(hx end, hs seq, hp partition, hq slot)``; ``hp = -1``: a stale entry
  (its service was aborted) that only advances the clock, as in the event loop;
- ``ctr``: seq, next query id, active, running, heap size, free slots, completions, rejections
  and held queries written, block cursor; ``clock``: now and the last arrival's time.

Rules (``rule``): 0 EarliestFinish, 1 FirstFree, 2 ELSA (``budget`` alpha x SLA per model,
``start[m, b]`` its scan's first size). Returns 0 at the end of the block (the caller loads the
next one), 1 when the next thing is at or after ``until`` or the run is over.
This module imports numba: it is imported only when a run takes the compiled core.
"""

from __future__ import annotations

import numpy as np

from mig_gym.sim.jit import jit

__all__ = ["dispatch", "push_key", "queue_tails", "stretch"]

EARLIEST_FINISH, FIRST_FREE, ELSA = 0, 1, 2


@jit(inline=True)
def _less(pf, pi, a, b):
    """Whether partition ``a`` comes before ``b`` in their class: idle first, then the earlier
    estimated free time, then the lower uid."""
    ba = pi[a, 2] >= 0 or pi[a, 5] > 0
    bb = pi[b, 2] >= 0 or pi[b, 5] > 0
    if ba != bb:
        return bb
    fa, fb = pf[a, 0], pf[b, 0]
    if fa != fb:
        return fa < fb
    return pi[a, 1] < pi[b, 1]


@jit(inline=True)
def _sift(pf, pi, ch, lo, hi, j):
    """Restore the heap order of class segment ``ch[lo:hi]`` after partition ``j``'s key changed."""
    i = pi[j, 7]
    while i > lo:
        up = lo + (i - lo - 1) // 2
        u = ch[up]
        if not _less(pf, pi, j, u):
            break
        ch[i] = u
        pi[u, 7] = i
        i = up
    while True:
        c = lo + 2 * (i - lo) + 1
        if c >= hi:
            break
        r = c + 1
        if r < hi and _less(pf, pi, ch[r], ch[c]):
            c = r
        k = ch[c]
        if not _less(pf, pi, k, j):
            break
        ch[i] = k
        pi[k, 7] = i
        i = c
    ch[i] = j
    pi[j, 7] = i


@jit(inline=True)
def _changed(pf, pi, ch, hp_off, j):
    c = pi[j, 0]
    _sift(pf, pi, ch, hp_off[c], hp_off[c + 1], j)


@jit(inline=True)
def _heap_push(hx, hs, hp, hq, ctr, x, s, p, q):
    i = ctr[4]
    ctr[4] = i + 1
    while i > 0:
        up = (i - 1) // 2
        if hx[up] < x or (hx[up] == x and hs[up] < s):
            break
        hx[i], hs[i], hp[i], hq[i] = hx[up], hs[up], hp[up], hq[up]
        i = up
    hx[i], hs[i], hp[i], hq[i] = x, s, p, q


@jit(inline=True)
def _heap_pop(hx, hs, hp, hq, ctr):
    """Remove the top (read it first); the last entry sinks from the root."""
    n = ctr[4] - 1
    ctr[4] = n
    x, s, p, q = hx[n], hs[n], hp[n], hq[n]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        r = c + 1
        if r < n and (hx[r] < hx[c] or (hx[r] == hx[c] and hs[r] < hs[c])):
            c = r
        if hx[c] < x or (hx[c] == x and hs[c] < s):
            hx[i], hs[i], hp[i], hq[i] = hx[c], hs[c], hp[c], hq[c]
            i = c
        else:
            break
    if n > 0:
        hx[i], hs[i], hp[i], hq[i] = x, s, p, q


@jit(inline=True)
def _start(pf, pi, ch, hp_off, lat, qf, qi, heap, ctr, noisy, now, j, s):
    """``Server._start``: slot ``s`` starts on partition ``j`` now."""
    hx, hs, hp, hq = heap
    est = lat[pi[j, 0], qi[s, 2]]
    pi[j, 2] = s
    pf[j, 2] = now
    end = now + est * qf[s, 1]
    pf[j, 3] = end
    if noisy or pf[j, 0] <= now:
        pf[j, 0] = now + est + pf[j, 1]
    ctr[3] += 1
    ctr[0] += 1
    _heap_push(hx, hs, hp, hq, ctr, end, ctr[0], j, s)
    _changed(pf, pi, ch, hp_off, j)


@jit(inline=True)
def _choose(rule, cls_off, cls_size, lat, ch, hp_off, pf, budget, s0, m, b, now):
    """The rule's partition for a batch ``b`` of model ``m`` arriving now, or -1 (as its
    ``choose`` on the simulator's class indexes: see the rule's module)."""
    inf = np.inf
    best, pick = inf, -1
    if rule == 2:
        first_ok = cand = -1
        above = False
        for c in range(cls_off[m], cls_off[m + 1]):
            ell = lat[c, b]
            if ell == inf:
                continue
            j = ch[hp_off[c]]
            w = pf[j, 0] - now
            td = (w if w > 0.0 else 0.0) + ell
            if cls_size[c] >= s0:
                if td <= budget:
                    return j
                above = True
            elif first_ok < 0 and td <= budget:
                first_ok = j
            if td < best:
                best, cand = td, j
        if s0 != 0 and not above and first_ok >= 0:
            return first_ok
        return cand
    for c in range(cls_off[m], cls_off[m + 1]):
        j = ch[hp_off[c]]
        key = push_key(rule, pf[j, 0], now, lat[c, b])
        if key < best:
            best, pick = key, j
    return pick


@jit(inline=True)
def push_key(rule, free, now, ell):
    """The class key of EarliestFinish (``rule`` 0: ``max(free, now) + ell``) or FirstFree (1:
    ``max(free, now)``, inf where the batch does not fit); the smallest wins, ties to the
    smaller size (strict ``<`` over classes smallest first)."""
    start = free if free > now else now
    if rule == 0:
        return start + ell
    return start if ell != np.inf else np.inf


@jit
def stretch(rule, budget, start, servable, noisy, until, arrivals_done, drain,
            bt, bm, bb, bn, pf, pi, cls_off, cls_size, lat, ch, hp_off, qf, qi, slots,
            hx, hs, hp, hq, ctr, clock, out_f, out_i, rej_f, rej_i, held):  # fmt: skip
    """Run the stretch (see the module docstring); returns 0 at the block's end, else 1."""
    heap = (hx, hs, hp, hq)
    now = clock[0]
    i, nb = ctr[9], bt.shape[0]
    status = 1
    while True:
        if arrivals_done:
            if not drain or ctr[2] == 0 or ctr[4] == 0 or hx[0] >= until:
                break
        elif i == nb:
            status = 0
            break
        elif ctr[4] == 0 or hx[0] > bt[i]:  # an arrival comes next (heap events first on ties)
            if bt[i] >= until:
                break
            now = clock[1] = bt[i]
            _arrive(rule, budget, start, servable, noisy, bm[i], bb[i], bn[i], now, pf, pi,
                    cls_off, cls_size, lat, ch, hp_off, qf, qi, slots, heap, ctr, rej_f, rej_i,
                    held)  # fmt: skip
            i += 1
            continue
        if hx[0] >= until:
            break
        now = hx[0]
        j, s = hp[0], hq[0]
        _heap_pop(hx, hs, hp, hq, ctr)
        if j < 0 or pi[j, 2] != s:
            continue  # stale: its service was aborted
        _complete(pf, pi, ch, hp_off, lat, qf, qi, heap, ctr, noisy, now, j, s, slots, out_f, out_i)
    clock[0] = now
    ctr[9] = i
    return status


@jit(inline=True)
def _arrive(rule, budget, start, servable, noisy, m, b, noise, t, pf, pi, cls_off, cls_size, lat,
            ch, hp_off, qf, qi, slots, heap, ctr, rej_f, rej_i, held):  # fmt: skip
    """``Simulator._arrivals`` for one query: rejected, started, queued (as ``Server.dispatch``)
    or held."""
    qid = ctr[1]
    ctr[1] = qid + 1
    ctr[2] += 1
    if b > servable[m]:
        n = ctr[7]
        rej_f[n] = t
        rej_i[n, 0], rej_i[n, 1] = qid, m
        ctr[7] = n + 1
        ctr[2] -= 1
        return
    ctr[5] -= 1
    s = slots[ctr[5]]
    qf[s, 0], qf[s, 1] = t, noise
    qi[s, 0], qi[s, 1], qi[s, 2], qi[s, 3] = qid, m, b, -1
    j = _choose(rule, cls_off, cls_size, lat, ch, hp_off, pf, budget[m], start[m, b], m, b, t)
    dispatch(pf, pi, ch, hp_off, lat, qf, qi, heap, ctr, noisy, t, s, j, held)


@jit(inline=True)
def dispatch(pf, pi, ch, hp_off, lat, qf, qi, heap, ctr, noisy, now, s, j, held):
    """``Server.dispatch`` of slot ``s`` to partition ``j``: started if the partition is idle,
    else queued (its estimated free time as the server keeps it); ``j = -1``: held."""
    if j < 0:
        held[ctr[8]] = s
        ctr[8] += 1
    elif pi[j, 2] < 0 and pi[j, 5] == 0:
        _start(pf, pi, ch, hp_off, lat, qf, qi, heap, ctr, noisy, now, j, s)
    else:
        est = lat[pi[j, 0], qi[s, 2]]
        if pi[j, 5] == 0:
            pi[j, 3] = s
        else:
            qi[pi[j, 4], 3] = s
        pi[j, 4] = s
        pi[j, 5] += 1
        pf[j, 1] += est
        free = pf[j, 0] + est
        if noisy:
            alt = now + pf[j, 1]
            free = free if free >= alt else alt
        pf[j, 0] = free
        _changed(pf, pi, ch, hp_off, j)


@jit(inline=True)
def _complete(pf, pi, ch, hp_off, lat, qf, qi, heap, ctr, noisy, now, j, s, slots, out_f, out_i):
    """``Server._complete`` on an available partition: record, free the slot, start the next
    queued query or go idle."""
    pi[j, 2] = -1
    ctr[3] -= 1
    ctr[2] -= 1
    n = ctr[6]
    out_f[n, 0], out_f[n, 1], out_f[n, 2] = now, qf[s, 0], now - pf[j, 2]
    out_i[n, 0], out_i[n, 1], out_i[n, 2] = qi[s, 0], qi[s, 1], pi[j, 6]
    ctr[6] = n + 1
    if s >= ctr[10]:  # a slot the kernel gave out (the first ``ctr[10]`` hold absorbed queries)
        slots[ctr[5]] = s
        ctr[5] += 1
    if pi[j, 5] > 0:
        s2 = pi[j, 3]
        pi[j, 3] = qi[s2, 3]
        pi[j, 5] -= 1
        pf[j, 1] = pf[j, 1] - lat[pi[j, 0], qi[s2, 2]] if pi[j, 5] > 0 else 0.0
        _start(pf, pi, ch, hp_off, lat, qf, qi, heap, ctr, noisy, now, j, s2)
    else:
        pf[j, 0] = now
        _changed(pf, pi, ch, hp_off, j)


@jit
def queue_tails(pi, qi, first, foreign, out, order):
    """Per partition, how many of its queued queries are ones it had on entry (slots below
    ``first``: always the front of the queue, FIFO) in ``foreign[j]``, and the slots queued
    since (behind them) appended to ``out`` in order; every queue's slots, front to back and
    partition after partition, in ``order``. Returns the number written to ``out``."""
    n = at = 0
    for j in range(pi.shape[0]):
        s, kept = pi[j, 3], 0
        for _ in range(pi[j, 5]):
            if s < first:
                kept += 1
            else:
                out[n] = s
                n += 1
            order[at] = s
            at += 1
            s = qi[s, 3]
        foreign[j] = kept
    return n
