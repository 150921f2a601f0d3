"""FIFS's pull mode compiled (numba), for the epoch fast path (:mod:`mig_gym.sim.epochs_pull`).

The event loop's pull mode, operation for operation, between two capacity changes: a partition
that goes idle takes the oldest query of its model's central queue that it can hold, else it
joins its model's idle partitions; an arriving query takes the longest-idle partition of its
model that can hold it, else it waits at the end of the central queue. Completions are handled
in the event loop's order, ``(end, start order)``, before arrivals at the same instant. Unlike
a push rule's fast loop this is a small event simulation (a heap of the running partitions), so
the order of simultaneous completions is the event loop's by construction, with no tie the
kernel cannot resolve.

Arrays (the runner packs them, :mod:`mig_gym.sim.epochs_pull`):

- ``lat[c, batch]``: each (model, size) class's latency row, inf where the batch does not fit;
- ``parts``: per available partition (grouped by model: ``m_off[m]`` to ``m_off[m + 1]``) its
  uid, model, size, class, end of its running query (inf if idle), start order of that query,
  idle rank (-1 while busy; lower: idle longer, the order of the event loop's idle dict) and
  the time it went idle;
- ``pool``: the waiting queries (arrival, id, model, batch, next in its model's queue); the
  first ``ctr[3]`` entries are the central queues on entry, in order, and arrivals are added
  after; ``head``/``tail`` the first and last entry of each model's queue (-1: empty);
- ``out``: one row per query started (end, arrival, id, model, size, service, partition uid,
  batch), in start order;
- ``ctr``: the last start order and idle rank given, rows written, pool entries used, and the
  size of the heap of running partitions (``(end, start order, partition)``, kept in three
  arrays).

This module imports numba: the runner imports it only when a pull run takes the epoch path.
Checked against the event loop inside the runner by tests/test_epochs.py and
tests/test_partition_fast.py.
"""

from __future__ import annotations

import numpy as np

from mig_gym.sim.jit import jit

__all__ = ["pull_settle", "pull_stretch", "queue_order"]

_INF = np.inf


@jit(inline=True)
def _push(heap, ctr, x, s, j):
    """Push ``(x, s, j)`` on the heap of running partitions ``heap`` (size ``ctr[4]``)."""
    hx, hs, hj = heap
    i = ctr[4]
    ctr[4] = i + 1
    while i > 0:
        up = (i - 1) // 2
        if hx[up] < x or (hx[up] == x and hs[up] < s):
            break
        hx[i], hs[i], hj[i] = hx[up], hs[up], hj[up]
        i = up
    hx[i], hs[i], hj[i] = x, s, j


@jit(inline=True)
def _pop(heap, ctr):
    """Remove the top of ``heap``; returns its ``(x, j)``."""
    hx, hs, hj = heap
    x, j = hx[0], hj[0]
    n = ctr[4] - 1
    ctr[4] = n
    lx, ls, lj = hx[n], hs[n], hj[n]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and (hx[c + 1] < hx[c] or (hx[c + 1] == hx[c] and hs[c + 1] < hs[c])):
            c += 1
        if lx < hx[c] or (lx == hx[c] and ls < hs[c]):
            break
        hx[i], hs[i], hj[i] = hx[c], hs[c], hj[c]
        i = c
    hx[i], hs[i], hj[i] = lx, ls, lj
    return x, j


@jit(inline=True)
def _begin(j, now, arr, qid, model, batch, lat, parts, out, ctr, heap):
    """Partition ``j`` starts a query at ``now``: note its end and start order, write its row."""
    uid, _, size, cls, end, seq, rank, _ = parts
    ell = lat[cls[j], batch]
    x = now + ell
    ctr[0] += 1
    end[j], seq[j], rank[j] = x, ctr[0], -1
    _push(heap, ctr, x, ctr[0], j)
    k = ctr[2]
    ctr[2] = k + 1
    out[0][k], out[1][k], out[2][k], out[3][k] = x, arr, qid, model
    out[4][k], out[5][k], out[6][k], out[7][k] = size[j], ell, uid[j], batch


@jit(inline=True)
def _freed(j, now, lat, parts, pool, head, tail, idle, ctr):
    """Partition ``j``'s query ended at ``now``: the oldest waiting query of its model that it
    can hold (the event loop's ``_became_idle``), taken off its queue; or -1, and ``j`` goes
    idle (last in its model's idle list)."""
    wb, wnext = pool[3], pool[4]
    mm, c = parts[1][j], parts[3][j]
    prev, w = -1, head[mm]
    while w >= 0 and lat[c, wb[w]] == _INF:
        prev, w = w, wnext[w]
    if w < 0:
        ctr[1] += 1
        parts[4][j], parts[6][j], parts[7][j] = _INF, ctr[1], now
        _append(j, mm, idle[0], idle[1], idle[2])
    else:
        _unlink(w, prev, mm, head, tail, wnext)
    return w


@jit(inline=True)
def _append(w, mm, head, tail, nxt):
    """Entry ``w`` joins the end of list ``mm`` (a central queue or an idle list)."""
    nxt[w] = -1
    if tail[mm] >= 0:
        nxt[tail[mm]] = w
    else:
        head[mm] = w
    tail[mm] = w


@jit(inline=True)
def _unlink(w, prev, mm, head, tail, nxt):
    """Remove entry ``w`` (after ``prev``, -1 if first) from list ``mm``."""
    if prev < 0:
        head[mm] = nxt[w]
    else:
        nxt[prev] = nxt[w]
    if tail[mm] == w:
        tail[mm] = prev


@jit(inline=True)
def _idle_lists(parts, m_off, idle):
    """Each model's idle partitions in the order they went idle (by idle rank)."""
    rank = parts[6]
    for mm in range(m_off.shape[0] - 1):
        lo = m_off[mm]
        sub = rank[lo : m_off[mm + 1]]
        for k in np.argsort(sub, kind="mergesort"):
            if sub[k] >= 0:
                _append(lo + k, mm, idle[0], idle[1], idle[2])


@jit(inline=True)
def _open(parts, m_off, pool, head, tail, ctr):
    """A kernel call's working state: the central queues linked in their order on entry, each
    model's idle list (by idle rank) and the heap of the running partitions."""
    wm, wnext = pool[2], pool[4]
    for w in range(ctr[3]):
        _append(w, wm[w], head, tail, wnext)
    end, seq, rank = parts[4], parts[5], parts[6]
    n = end.shape[0]
    idle = (np.full(head.shape[0], -1), np.full(head.shape[0], -1), np.empty(n, np.int64))
    _idle_lists(parts, m_off, idle)
    heap = (np.empty(n), np.empty(n, np.int64), np.empty(n, np.int64))
    ctr[4] = 0
    for j in range(n):
        if rank[j] < 0 and end[j] < _INF:
            _push(heap, ctr, end[j], seq[j], j)
    return idle, heap


@jit
def pull_stretch(t, m, b, qid, stop, lat, parts, m_off, pool, head, tail, out, ctr):
    """Serve the arrivals ``t, m, b, qid`` (in order, each servable by the plan), then the
    completions at or before ``stop``; updates ``parts``, ``pool``, ``head``/``tail`` and
    ``ctr`` in place and writes a row of ``out`` per query started."""
    wa, wid, wm, wb, wnext = pool
    cls = parts[3]
    idle, heap = _open(parts, m_off, pool, head, tail, ctr)
    i, n_arr = 0, t.shape[0]
    while True:  # one event per turn: a completion (first on ties) or an arrival
        until = t[i] if i < n_arr else stop
        if ctr[4] > 0 and heap[0][0] <= until:
            now, j = _pop(heap, ctr)
            w = _freed(j, now, lat, parts, pool, head, tail, idle, ctr)
            if w < 0:
                continue
            a, q, mi, bi = wa[w], wid[w], wm[w], wb[w]
        elif i < n_arr:
            now, a, q, mi, bi = t[i], t[i], qid[i], m[i], b[i]
            i += 1
            prev, j = -1, idle[0][mi]  # the longest-idle partition that can hold the batch
            while j >= 0 and lat[cls[j], bi] == _INF:
                prev, j = j, idle[2][j]
            if j < 0:  # none: it waits at the end of its model's central queue
                w = ctr[3]
                ctr[3] = w + 1
                wa[w], wid[w], wm[w], wb[w] = a, q, mi, bi
                _append(w, mi, head, tail, wnext)
                continue
            _unlink(j, prev, mi, idle[0], idle[1], idle[2])
        else:
            break
        _begin(j, now, a, q, mi, bi, lat, parts, out, ctr, heap)


@jit
def pull_settle(fresh, now, lat, parts, m_off, pool, head, tail, out, ctr):
    """The settle at ``now`` of the partitions ``fresh`` (indexes into ``parts``, in GPU and
    placement order) that just came online: each in turn takes the oldest waiting query of its
    model it can hold, or goes idle (the event loop's ``_settle``); arguments as
    :func:`pull_stretch`'s."""
    wa, wid, wm, wb, _ = pool
    idle, heap = _open(parts, m_off, pool, head, tail, ctr)
    for j in fresh:
        w = _freed(j, now, lat, parts, pool, head, tail, idle, ctr)
        if w >= 0:
            _begin(j, now, wa[w], wid[w], wm[w], wb[w], lat, parts, out, ctr, heap)


@jit
def queue_order(head, wnext, out):
    """The entries still waiting, model by model in queue order, into ``out``; their count."""
    k = 0
    for mm in range(head.shape[0]):
        w = head[mm]
        while w >= 0:
            out[k] = w
            k += 1
            w = wnext[w]
    return k
