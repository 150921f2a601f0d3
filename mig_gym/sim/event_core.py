"""The simulator's compiled core: its push-mode event loop run by a numba kernel between the
instants that need its Python code.

Most of a push-dispatched run is arrivals and completions; failures, recoveries,
reconfigurations, epochs and the re-dispatch that follows them are rare. :class:`CompiledCore`
is a mixin of :class:`~mig_gym.sim.simulator.Simulator`: whenever the next thing to happen is
an arrival or a completion before the next Python-handled instant (a scheduled event, or the
end of a draining GPU's last service), ``run_until_decision`` hands the stretch up to that
instant to :func:`mig_gym.sim.event_kernel.stretch`: the state is packed into flat arrays
(``_core_pack``, :mod:`mig_gym.sim.event_pack`), the kernel runs block by block of arrivals, the
outcomes are recorded in bulk (:meth:`~mig_gym.metrics.Recorder.bulk`) and the state is written
back onto the partitions, queues, class indexes and event heap (``_core_unpack``), so that
between stretches the simulator is exactly the event loop's. The kernel is the event loop's
arithmetic operation for operation (no fast-math), so every completion time is the Python
loop's; counts are identical and the recorded sums agree to rounding (tests/test_event_core.py).

Arrival observers see each kernel call's arrivals through ``on_block`` (before the decision
that reads them). It needs numba (the ``fast`` extra), push dispatch by a rule with a compiled
event form (``event_form``: EarliestFinish, FirstFree, ELSA) and no observation that watches the
class indexes (Dispatch-v0's); :meth:`core_blocker` says why a run takes the Python loop.
``Simulator(..., compiled=False)`` keeps the Python loop, the reference.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from mig_gym.metrics import Completions, Rejections
from mig_gym.sim import compiled
from mig_gym.sim.entities import GPU
from mig_gym.sim.event_pack import CorePacking, _Packed
from mig_gym.sim.server import REJECT_MEMORY, REJECT_NOT_HOSTED

if TYPE_CHECKING:
    from collections.abc import Callable

    from mig_gym.sim.simulator import Simulator

__all__ = ["CompiledCore", "CoreRule", "REASONS", "record_outcomes"]

REASONS = (REJECT_MEMORY, REJECT_NOT_HOSTED)  # rejection reasons, as the kernels code them


class CoreRule(NamedTuple):
    """A push rule's compiled event form: ``kind`` (0 EarliestFinish, 1 FirstFree, 2 ELSA),
    ELSA's ``budget`` (alpha x SLA per model) and its scan start ``home(model, batch)`` (None:
    the smallest size)."""

    kind: int
    budget: np.ndarray | None = None
    home: Callable[[int, int], int] | None = None


class CompiledCore(CorePacking):
    """The compiled core's side of the simulator (a mixin of ``Simulator``)."""

    def core_blocker(self) -> str | None:
        """Why this run's event loop cannot use the compiled core, or None."""
        s: Simulator = self  # type: ignore[assignment]
        d = s.dispatcher
        if not s.compiled:
            return "compiled=False"
        if s.central:
            return "pull dispatch (FIFS)"
        form = getattr(d, "event_form", None)
        if form is None or form(s.slo_s) is None:
            return f"dispatcher {type(d).__name__} has no compiled event form"
        if any(getattr(o, "on_block", None) is None for o in s._observers):
            return "an arrival observer has no on_block (the core feeds observers per block)"
        if any(ix.watch is not None for ix in s.index.values()):
            return "an observation watches the class indexes"
        if compiled.load("mig_gym.sim.event_kernel") is None:
            return "numba (the fast extra) is not installed"
        return None

    # ------------------------------------------------------------------ an outside packer
    def pack_blocker(self) -> str | None:
        """Why an outside stepper (Dispatch-v0's compiled vector step, which dispatches itself)
        cannot take this simulator's state into its arrays now, or None."""
        s: Simulator = self  # type: ignore[assignment]
        if s.central or s.dispatcher is not None:
            return "the simulator dispatches (an attached dispatcher or pull mode)"
        if s._observers or s._cv > 0:
            return "arrival observers or service noise"
        if s._settle_due or s.arrivals_done:
            return "an instant to settle, or no arrivals left"
        if any(e[3] is None for e in s._heap) or any(g.state == GPU.DRAINING for g in s.gpus):
            return "scheduled events (faults, reconfigurations) or a draining GPU"
        return None

    def pack_state(self, kernel: Any) -> _Packed:
        """The state as the compiled core's arrays (:meth:`_core_pack`), for an outside stepper
        whose invalid choices the earliest-finish rule remaps; ``kernel``: the event kernels."""
        s: Simulator = self  # type: ignore[assignment]
        s._core_rule, s._core = CoreRule(0), kernel
        return s._core_pack()

    def unpack_state(self, k: _Packed) -> None:
        """The arrays back onto the objects (:meth:`_core_unpack`)."""
        self._core_unpack(k)  # type: ignore[attr-defined]
        self._core_memo = None  # the outside stepper's arrays are not ours to keep

    def arrival_block(self) -> tuple[Any, int]:
        """The current block of arrivals and the index of its next arrival."""
        s: Simulator = self  # type: ignore[assignment]
        return s._blk, s._blk_i

    def next_block(self) -> bool:
        """The current block was used up (outside): load the next; False if none is left."""
        s: Simulator = self  # type: ignore[assignment]
        s._blk_i = len(s._blk.arrival_s)
        s._load_block()
        return not s.arrivals_done

    def reject_codes(self) -> np.ndarray:
        """Per model, the index in ``REASONS`` of the reason an arrival of it is rejected."""
        s: Simulator = self  # type: ignore[assignment]
        return np.array([0 if m in s._hosted else 1 for m in range(s.num_models)], np.int64)

    def _core_setup(self) -> None:
        s: Simulator = self  # type: ignore[assignment]
        s._core_checked = True
        if s.core_blocker() is None:
            s._core = compiled.load("mig_gym.sim.event_kernel")
            s._core_rule = s.dispatcher.event_form(s.slo_s)  # type: ignore[union-attr]

    def _core_until(self) -> float:
        """The next instant the Python loop must handle: a scheduled event, or the end of a
        draining GPU's service (its last one takes the GPU down)."""
        s: Simulator = self  # type: ignore[assignment]
        until = min((e[0] for e in s._heap if e[3] is None), default=math.inf)
        for g in s.gpus:
            if g.state == GPU.DRAINING:
                for p in g.partitions:
                    if p.running is not None and p.run_end_s < until:
                        until = p.run_end_s
        return until

    def _core_stretch(self) -> bool:
        """Run the stretch up to the next Python-handled instant on the kernel; False (and
        nothing done) when the next thing to happen is at that instant."""
        s: Simulator = self  # type: ignore[assignment]
        if s._settle_due or (s.arrivals_done and (not s.drain or s.active == 0)):
            return False
        until = s._core_until()
        nxt = s._heap[0][0] if s._heap else math.inf
        if not s.arrivals_done:
            nxt = min(nxt, s._blk_t[s._blk_i])
        if nxt >= until:
            return False
        k = s._core_pack()
        while True:
            status = s._core_run(k, until)
            if status == 1:
                break
            s._load_block()  # the block ended: the next one (or the end of the arrivals)
            k.ctr[9] = 0
            if s.arrivals_done and (not s.drain or k.ctr[2] == 0):
                break
        s._core_unpack(k)
        return True

    def _core_run(self, k: Any, until: float) -> int:
        """One kernel call on the current block, its outcomes recorded."""
        s: Simulator = self  # type: ignore[assignment]
        blk = s._blk if not s.arrivals_done else None
        bt = blk.arrival_s if blk is not None else _EMPTY_F
        i0 = int(k.ctr[9])
        left = len(bt) - i0
        s._core_room(k, left)
        bm = blk.model.astype(np.int64, copy=False) if blk is not None else _EMPTY_I
        bb = blk.batch.astype(np.int64, copy=False) if blk is not None else _EMPTY_I
        bn = s._blk_noise_arr if (blk is not None and s._cv > 0) else np.ones(len(bt))
        r = s._core_rule
        k.ctr[6:9] = 0
        status = s._core.stretch(  # type: ignore[union-attr]
            r.kind, k.budget, k.start, k.servable, s._cv > 0, until, s.arrivals_done, s.drain,
            bt, bm, bb, bn, k.pf, k.pi, k.cls_off, k.cls_size, k.lat, k.ch, k.hp_off, k.qf,
            k.qi, k.slots, k.hx, k.hs, k.hp, k.hq, k.ctr, k.clock, k.out_f, k.out_i, k.rej_f,
            k.rej_i, k.held,
        )  # fmt: skip
        nc, nr, nh, i1 = int(k.ctr[6]), int(k.ctr[7]), int(k.ctr[8]), int(k.ctr[9])
        record_outcomes(s.rec, bt[i0:i1], k.out_f[:nc], k.out_i[:nc], k.rej_f[:nr], k.rej_i[:nr],
                        k.reason, k.slo)  # fmt: skip
        for o in s._observers:  # every arrival, rejected or not, before the next decision
            o.on_block(bm[i0:i1], bb[i0:i1])
        k.held_slots.extend(k.held[:nh].tolist())
        return int(status)


_EMPTY_F = np.empty(0)
_EMPTY_I = np.empty(0, np.int64)


def record_outcomes(rec: Any, arrivals: np.ndarray, out_f: np.ndarray, out_i: np.ndarray,
                    rej_f: np.ndarray, rej_i: np.ndarray, reason: np.ndarray,
                    slo: np.ndarray) -> None:  # fmt: skip
    """A kernel's outcome rows into the recorder in bulk: the arrivals' times, completions
    (``out_f``: end, arrival, service; ``out_i``: id, model, size) and rejections (``rej_f``:
    time; ``rej_i``: id, model), with each model's rejection code ``reason``."""
    done = Completions(out_f[:, 0], out_f[:, 1], out_i[:, 0], out_i[:, 1], out_i[:, 2],
                       out_f[:, 2], slo)  # fmt: skip
    rm = rej_i[:, 1]
    rec.bulk(arrivals, done, Rejections(rej_f, rej_i[:, 0], rm, reason[rm], REASONS))
