"""Compiled forms of the push rules' fast loops (numba), for the epoch fast path.

Each kernel is its rule's Python fast loop (:func:`mig_gym.policies.dispatch.elsa._elsa_fast`,
:func:`~mig_gym.policies.dispatch.baselines._earliest_finish`,
:func:`~mig_gym.policies.dispatch.baselines._first_free`) on the flat arrays of
:class:`mig_gym.sim.compiled.ClassArrays`, operation for operation (no fast-math: bit-identical
results), plus the epoch runner's replay of which partition of the chosen class served each
query (:func:`replace_top` on the class's ``(free, uid)`` heap). They sit in one module, not next
to each ``choose``, so that numba is imported only when an epoch run asks for a compiled form
(the rules import this module inside ``_compiled_loop``). Checked against the Python loops by
tests/test_compiled.py and, inside the runner, against the event loop by tests/test_epochs.py.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mig_gym.sim.compiled import ClassArrays, CompiledLoop
from mig_gym.sim.event_kernel import push_key
from mig_gym.sim.jit import jit

__all__ = ["EARLIEST_FINISH", "FIRST_FREE", "elsa_loop", "jit", "push_loop", "replace_top"]


@jit
def replace_top(free: np.ndarray, uid: np.ndarray, lo: int, hi: int, x: float, u: int) -> None:
    """Replace the top of the ``(free, uid)`` min-heap in ``[lo, hi)`` by ``(x, u)``."""
    n = hi - lo
    i = 0
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        r = c + 1
        if r < n:
            fr, fc = free[lo + r], free[lo + c]
            if fr < fc or (fr == fc and uid[lo + r] < uid[lo + c]):
                c = r
        fc = free[lo + c]
        if fc < x or (fc == x and uid[lo + c] < u):
            free[lo + i] = fc
            uid[lo + i] = uid[lo + c]
            i = c
        else:
            break
    free[lo + i] = x
    uid[lo + i] = u


def elsa_loop(budgets: np.ndarray, home: Callable[[int, int], int] | None) -> CompiledLoop:
    """ELSA's compiled form: ``budgets`` is ``alpha * SLA`` per model; ``home`` the scan start
    ``(model, batch) -> size`` (None: the smallest size), read once per block since a
    re-planning partitioner moves it."""

    def loop(t: np.ndarray, a: np.ndarray, m: np.ndarray, b: np.ndarray,
             c: ClassArrays) -> tuple:  # fmt: skip
        n_models, width = len(budgets), c.lat.shape[1]
        start = np.zeros((n_models, width), np.int64)  # scan start per (model, batch)
        if home is not None:
            start[...] = [[home(mm, bb) for bb in range(width)] for mm in range(n_models)]
        out = c.outputs(len(t))
        _elsa_kernel(t, a, m, b, budgets, start, c.cls_off, c.cls_size, c.lat, c.part_off,
                     c.free, c.uid, *out)  # fmt: skip
        return out

    return loop


@jit
def _elsa_kernel(t, a, m, b, budgets, start, cls_off, cls_size, lat, part_off, free, uid,
                 end, size, serv, puid):  # fmt: skip
    """:func:`_elsa_fast` on flat arrays (:mod:`mig_gym.sim.compiled`), with the served
    partition's uid: the same scan from ``start[model, batch]`` (0: the smallest size), the same
    arithmetic and ties, for queries dispatched at ``t`` that arrived at ``a`` (the budget is
    ``alpha * SLA`` less the age, as ``choose``'s); results go to ``end``, ``size``, ``serv`` and
    ``puid``."""
    inf = np.inf
    for i in range(t.shape[0]):
        ti, mi, bi = t[i], m[i], b[i]
        budget, s0 = budgets[mi] - (ti - a[i]), start[mi, bi]
        pick = first_ok = cand = -1
        above = False  # a class at or above the start size fits the batch
        best = inf
        for c in range(cls_off[mi], cls_off[mi + 1]):
            ell = lat[c, bi]
            if ell == inf:
                continue
            w = free[part_off[c]] - ti
            td = (w if w > 0.0 else 0.0) + ell
            if cls_size[c] >= s0:
                if td <= budget:
                    pick = c
                    break
                above = True
            elif first_ok < 0 and td <= budget:
                first_ok = c
            if td < best:
                best, cand = td, c
        if pick < 0:
            pick = first_ok if (s0 != 0 and not above and first_ok >= 0) else cand
        lo = part_off[pick]
        f, ell = free[lo], lat[pick, bi]
        x = (f if f > ti else ti) + ell
        u = uid[lo]
        replace_top(free, uid, lo, part_off[pick + 1], x, u)
        end[i], size[i], serv[i], puid[i] = x, cls_size[pick], ell, u


EARLIEST_FINISH, FIRST_FREE = 0, 1


def push_loop(rule: int) -> CompiledLoop:
    """EarliestFinish's (``EARLIEST_FINISH``) or FirstFree's (``FIRST_FREE``) compiled form."""

    def loop(t: np.ndarray, a: np.ndarray, m: np.ndarray, b: np.ndarray, c: ClassArrays) -> tuple:
        out = c.outputs(len(t))  # ``a`` (arrivals) unused: these rules do not read a query's age
        _push_kernel(rule, t, m, b, c.cls_off, c.cls_size, c.lat, c.part_off, c.free, c.uid, *out)
        return out

    return loop


@jit
def _push_kernel(rule, t, m, b, cls_off, cls_size, lat, part_off, free, uid,
                 end, size, serv, puid):  # fmt: skip
    """:func:`_earliest_finish` (``rule`` 0) or :func:`_first_free` (1) on flat arrays
    (:mod:`mig_gym.sim.compiled`), with the served partition's uid: the same keys and ties
    (strict ``<`` over classes smallest first); results go to ``end``, ``size``, ``serv`` and
    ``puid``."""
    inf = np.inf
    for i in range(t.shape[0]):
        ti, mi, bi = t[i], m[i], b[i]
        best, pick = inf, -1
        for c in range(cls_off[mi], cls_off[mi + 1]):
            key = push_key(rule, free[part_off[c]], ti, lat[c, bi])
            if key < best:
                best, pick = key, c
        lo = part_off[pick]
        ell = lat[pick, bi]
        x = best if rule == 0 else best + ell
        u = uid[lo]
        replace_top(free, uid, lo, part_off[pick + 1], x, u)
        end[i], size[i], serv[i], puid[i] = x, cls_size[pick], ell, u
