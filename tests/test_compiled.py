"""The compiled dispatch loops (mig_gym.sim.compiled, numba) against the Python fast loops.

Each rule with a compiled form is run on the same class state and the same block of queries by
its Python fast loop (plus the epoch runner's replay of which partition served each query: the
one free soonest, ties to the lowest uid) and by its kernel. Times are small multiples of 0.25,
so free times, waits and budgets tie exactly and often: the kernels must take the same picks,
give bit-identical end and service times and leave the same heaps. The kernels also re-dispatch
held queries (dispatched later than they arrived), where ELSA's budget shrinks by the age.
The whole epoch runner with and without the kernels is checked against the event loop in
tests/test_epochs.py.
"""

from __future__ import annotations

import heapq
import math
import sys

import numpy as np
import pytest

from mig_gym.policies.dispatch import elsa as elsa_module
from mig_gym.policies.dispatch.baselines import EarliestFinish, FirstFree
from mig_gym.policies.dispatch.elsa import ELSA
from mig_gym.sim import compiled
from mig_gym.sim.compiled import ClassArrays

needs_numba = pytest.mark.skipif(
    not compiled.AVAILABLE, reason="numba is not installed (pip install 'mig-gym[fast]')"
)
SIZES = (1, 2, 3, 4, 7)
WIDTH = 9  # batches 0..8
SLO = (2.0, 3.0, 1.5)


def _state(rng: np.random.Generator) -> tuple[dict, dict]:
    """Random heaps of (free, uid) per (model, size) and latency tables (inf: does not fit)."""
    idh: dict[int, dict[int, list]] = {}
    lat: dict[tuple[int, int], list[float]] = {}
    uid = 0
    for m in range(len(SLO)):
        for k in SIZES:
            fits = int(rng.integers(0, WIDTH))  # largest batch that fits (k=7 fits all)
            table = [0.25 * int(rng.integers(1, 9 - k)) * (1 + b // 4) for b in range(WIDTH)]
            lat[(m, k)] = [x if (b <= fits or k == 7) else math.inf for b, x in enumerate(table)]
            n = int(rng.integers(0, 4))
            if n:
                heap = [(0.25 * int(rng.integers(0, 12)), uid + j) for j in range(n)]
                heapq.heapify(heap)
                idh.setdefault(m, {})[k] = heap
                uid += n
    return idh, lat


def _block(rng: np.random.Generator, idh: dict, lat: dict, n: int, held: bool) -> tuple:
    """Arrival-ordered queries whose batch some class of their model can hold."""
    fit = {m: max(max(b for b, x in enumerate(lat[(m, k)]) if x < math.inf) for k in per)
           for m, per in idh.items()}  # fmt: skip
    models = sorted(fit)
    m = rng.choice(models, n).astype(np.int64)
    b = np.array([int(rng.integers(0, fit[x] + 1)) for x in m], np.int64)
    a = np.sort(0.25 * rng.integers(0, 40, n)).astype(np.float64)
    t = np.full(n, a[-1] + 0.5) if held else a  # held: all dispatched at once, later
    return t, a, m, b


def _python(rule, idh: dict, lat: dict, t, a, m, b) -> tuple:
    """The Python fast loop plus the runner's uid replay, on copies of the state. One query per
    call, so that each held query gets ELSA's budget less its own age."""
    idh = {mm: {k: list(h) for k, h in per.items()} for mm, per in idh.items()}
    classes = [[(k, lat[(mm, k)], [f for f, _ in idh[mm][k]]) for k in sorted(idh.get(mm, {}))]
               for mm in range(len(SLO))]  # fmt: skip
    out: tuple[list, list, list, list] = ([], [], [], [])
    for i in range(len(t)):
        age = float(t[i] - a[i])
        loop = _aged(rule, age) if isinstance(rule, ELSA) else rule.fast_form(SLO)
        end, size, serv = loop([float(t[i])], [int(m[i])], [int(b[i])], [0], classes)
        h = idh[int(m[i])][size[0]]
        u = h[0][1]
        heapq.heapreplace(h, (end[0], u))
        for col, x in zip(out, (end[0], size[0], serv[0], u), strict=True):
            col.append(x)
    return out, idh


def _aged(rule: ELSA, age: float):
    """ELSA's Python loop with its budget (alpha * SLA) less ``age``, as ``choose`` computes it."""
    budgets = [rule.alpha * s - age for s in SLO]
    home = rule.home_of if rule.scan_from == "home" else None

    def loop(ts, ms, bs, ids, classes):
        return elsa_module._elsa_fast(ts, ms, bs, classes, budgets, home)

    return loop


def _home(m: int, b: int) -> int:
    return (1, 2, 3, 4, 7)[(m + b) % 5]


RULES = [
    ("elsa", lambda: ELSA()),
    ("elsa_alpha", lambda: ELSA(alpha=0.5)),
    ("elsa_home", lambda: ELSA(alpha=0.8, scan_from="home", home_of=_home)),
    ("earliest_finish", lambda: EarliestFinish()),
    ("fifs_push", lambda: FirstFree()),
]


@needs_numba
@pytest.mark.parametrize(("name", "make"), RULES, ids=[r[0] for r in RULES])
@pytest.mark.parametrize("held", [False, True])
def test_kernels_equal_the_python_loops_on_tied_states(name, make, held):
    rule = make()
    kernel = rule.compiled_form(SLO)
    assert kernel is not None
    for seed in range(30):
        rng = np.random.default_rng(seed)
        idh, lat = _state(rng)
        if not idh:
            continue
        t, a, m, b = _block(rng, idh, lat, 60, held)
        want, heaps = _python(rule, idh, lat, t, a, m, b)
        packed = ClassArrays(idh, lat, len(SLO))
        got = kernel(t, a, m, b, packed)
        for w, g in zip(want, got, strict=True):
            assert w == g.tolist(), (name, seed)
        back = packed.heaps()
        assert {mm: {k: sorted(h) for k, h in per.items()} for mm, per in back.items()} == {
            mm: {k: sorted(h) for k, h in per.items()} for mm, per in heaps.items()
        }
        for per in back.values():  # still heaps: the runner goes on with them
            for h in per.values():
                assert all(h[(i - 1) // 2] <= h[i] for i in range(1, len(h)))


@needs_numba
def test_replace_top_keeps_a_free_uid_heap():
    from mig_gym.policies.dispatch.kernels import replace_top  # numba: only where installed

    rng = np.random.default_rng(0)
    fn = replace_top.py_func  # the plain function; the kernels call its compiled form
    for _ in range(200):
        n = int(rng.integers(1, 12))
        heap = [(float(rng.integers(0, 5)), int(u)) for u in rng.permutation(n)]
        heapq.heapify(heap)
        free = np.array([f for f, _ in heap])
        uid = np.array([u for _, u in heap], np.int64)
        x, u = float(rng.integers(0, 6)), int(rng.integers(100, 200))
        top = heapq.heapreplace(heap, (x, u))
        assert (free[0], uid[0]) == top
        fn(free, uid, 0, n, x, u)
        pairs = list(zip(free.tolist(), uid.tolist(), strict=True))
        assert sorted(pairs) == sorted(heap)
        assert all(pairs[(i - 1) // 2] <= pairs[i] for i in range(1, n))


def test_rules_without_numba_or_with_unhonoured_parameters_have_no_compiled_form(monkeypatch):
    assert (ELSA().compiled_form(SLO) is not None) == compiled.AVAILABLE
    monkeypatch.setattr(compiled, "AVAILABLE", False)
    assert ELSA().compiled_form(SLO) is None
    assert EarliestFinish().compiled_form(SLO) is None


def test_a_numba_that_fails_to_import_warns_once_and_the_python_loops_run(monkeypatch):
    monkeypatch.setattr(compiled, "AVAILABLE", True)
    monkeypatch.setitem(sys.modules, "mig_gym.policies.dispatch.kernels", None)  # import fails
    with pytest.warns(RuntimeWarning, match="numba is installed but cannot be imported"):
        assert ELSA().compiled_form(SLO) is None
    assert compiled.AVAILABLE is False  # not tried again
    assert FirstFree().compiled_form(SLO) is None


@needs_numba
def test_without_a_writable_cache_folder_the_kernels_compile_uncached(monkeypatch):
    from numba.core import caching

    from mig_gym.policies.dispatch import kernels  # numba: only where installed

    monkeypatch.setattr(caching.CacheImpl, "_locator_classes", [])  # no folder to cache in

    def add(x: float, y: float) -> float:
        return x + y

    fn = kernels.jit(add)
    assert fn(1.0, 2.0) == 3.0 and fn._cache.__class__.__name__ == "NullCache"
