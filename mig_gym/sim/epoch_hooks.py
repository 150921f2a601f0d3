"""The simulator's side of the epoch fast path (:mod:`mig_gym.sim.epochs`).

:class:`EpochAccess` is a mixin of :class:`~mig_gym.sim.simulator.Simulator`: what an
:class:`~mig_gym.sim.epochs.EpochRunner` may read of the simulator's state and the event-loop
steps it asks the simulator to take at capacity changes (a drained GPU going down, a downtime
ending, the instant's re-dispatch), so that no other module reads the simulator's private fields.
Event heap entries are those of :mod:`mig_gym.sim.events`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

from mig_gym.sim import compiled
from mig_gym.sim.entities import GPU, Partition, Query
from mig_gym.sim.events import GPUFail, GPURecover, ReconfigDone

if TYPE_CHECKING:
    from mig_gym.sim.simulator import Simulator
    from mig_gym.workload import QueryBlock

__all__ = ["DONE", "DRAIN", "EpochAccess"]

DRAIN = 0  # event kinds, in the order simultaneous events are handled
DONE = 1


def _pull_blocker(s: Simulator) -> str | None:
    """Why a pull-mode run cannot take the epoch path: it needs numba (``mig-gym[fast]``)."""
    if compiled.load("mig_gym.sim.pull_kernel") is None:  # numba: about 0.2 s the first time
        return "pull dispatch (FIFS) takes the epoch fast path only with numba (the fast extra)"
    return s._started_blocker()


class EpochAccess:
    """The simulator's side of the epoch fast path (a mixin of ``Simulator``): what
    :class:`EpochRunner` reads of its state and the event-loop steps it asks it to take."""

    def epoch_blocker(self) -> str | None:
        """Why this simulator cannot run its epochs on the fast path, or None."""
        s: Simulator = self  # type: ignore[assignment]
        d = s.dispatcher
        if s._cv > 0:
            return "service-time noise (workload.service_cv > 0)"
        if any(e[3] is None and type(e[2]) in (GPUFail, GPURecover) for e in s._heap):
            return "GPU faults are scheduled"
        if s._epoch_s is None:
            return "no decision epochs"
        if s.drain:
            return "run.drain is true (the epoch path stops at the last decision)"
        if s.central:  # the simulator's own pull mode, compiled: no rule to check
            return _pull_blocker(s)
        if d is None:
            return "no dispatcher attached (an outside policy dispatches)"
        if s.fallback is not d:
            return "a separate fallback dispatcher re-dispatches"
        if getattr(d, "fast_form", None) is None:
            return f"dispatcher {type(d).__name__} has no closed-form fast rule"
        if d.fast_form(s.slo_s) is None:  # type: ignore[attr-defined]
            blockers = ", ".join(d.fast_blockers())  # type: ignore[attr-defined]
            return f"dispatcher {type(d).__name__} has no closed-form fast rule for {blockers}"
        return self._started_blocker()

    def _started_blocker(self) -> str | None:
        s: Simulator = self  # type: ignore[assignment]
        if s._next_id or s.last_arrival_s or s.now:
            return "the run has already started"
        if any(g.state != GPU.UP for g in s.gpus):
            return "a GPU is not up"
        return None

    @property
    def epoch_s(self) -> float | None:
        return self._epoch_s  # type: ignore[attr-defined]

    @property
    def servable_batches(self) -> tuple[int, ...]:
        """The largest batch of each model the plan (or the pending plan) can serve."""
        return tuple(self._servable)  # type: ignore[attr-defined]

    @property
    def largest_fits(self) -> dict[tuple[int, int], int]:
        """The largest batch each (model, size) class can hold (0: none)."""
        return dict(self._max_fit)  # type: ignore[attr-defined]

    @property
    def hosted_models(self) -> frozenset[int]:
        return frozenset(self._hosted)  # type: ignore[attr-defined]

    def epoch_take_stream(self) -> tuple[QueryBlock | None, Iterator[QueryBlock]]:
        """Hand over the arrivals, as ``take_arrivals`` does but picklable: the block already
        loaded (None if the stream is empty) and the rest of the stream; only before the first
        arrival. Afterwards the simulator has no arrivals left."""
        s: Simulator = self  # type: ignore[assignment]
        if s._next_id or s.last_arrival_s:
            raise RuntimeError("epoch_take_stream() after arrivals were processed")
        if s.arrivals_done:
            return None, iter(())
        first, s._blk_t, s.arrivals_done = s._blk, [], True
        return first, s._stream

    def epoch_scheduled(self) -> list[tuple[float, int, int, int]]:
        """Empty the event heap; return its ``ReconfigDone`` events as ``(time, seq, gpu,
        gen)``. The rest are completions the runner tracks itself and the epoch ticks it keeps."""
        heap = self._heap  # type: ignore[attr-defined]
        out = [(e[0], e[1], e[2].gpu, e[2].gen) for e in heap
               if e[3] is None and type(e[2]) is ReconfigDone]  # fmt: skip
        heap.clear()
        return out

    def epoch_event(self, now: float, kind: int, gpu: int, gen: int) -> None:
        """At ``now``: a draining GPU's last query ended, or a downtime ended (``gen``)."""
        s: Simulator = self  # type: ignore[assignment]
        s.now = now
        g = s.gpus[gpu]
        if kind == DRAIN:
            if g.state == GPU.DRAINING:
                s._begin_downtime(g)
        elif gen == s._gen[gpu] and g.state == GPU.RECONFIGURING:
            s._on_reconfig_done(g)

    def epoch_settle(self) -> bool:
        """Re-dispatch what the instant displaced (the event loop's settle), if anything is
        due; True if it was."""
        if self._settle_due:  # type: ignore[attr-defined]
            self._settle()  # type: ignore[attr-defined]
            return True
        return False

    def epoch_take_fresh(self) -> list[Partition] | None:
        """Pull mode, after the events of an instant: the partitions that came online, in the
        order the settle lets them pull (GPU, placement), taken over by the runner (the settle
        is then done); None if anything else waits for the settle (the simulator settles)."""
        s: Simulator = self  # type: ignore[assignment]
        if s._displaced or s.held:
            return None
        fresh, s._fresh, s._settle_due = s._fresh, [], False
        return sorted((p for p in fresh if p.available and p.running is None),
                      key=lambda p: (p.gpu, p.start))  # fmt: skip

    def epoch_starts(self) -> list[int]:
        """The partitions (uids) whose query the simulator itself started since the event heap
        was last emptied (a settle's pulls), in start order."""
        heap = self._heap  # type: ignore[attr-defined]
        return [uid for _, uid in sorted((e[1], e[2].uid) for e in heap if e[3] is not None)]

    def epoch_pull_read(self) -> tuple[list[list[Partition]], list[list[Query]]]:
        """Pull mode: each model's idle partitions (longest idle first) and central queue."""
        s: Simulator = self  # type: ignore[assignment]
        return [list(d.values()) for d in s.idle], [list(dq) for dq in s.central_q]

    def epoch_pull_write(self, idle: list[list[Partition]], central: list[list[Query]]) -> None:
        """Pull mode: set each model's idle partitions (longest idle first) and central queue."""
        s: Simulator = self  # type: ignore[assignment]
        s.idle = [{p.uid: p for p in ps} for ps in idle]
        s.central_q = [deque(qs) for qs in central]

    def epoch_take_held(self) -> list[Query]:
        s: Simulator = self  # type: ignore[assignment]
        out = list(s.held)
        s.held = deque()
        return out

    def epoch_state(self, now: float, running: int, queued: int, held: list[Query],
                    last_arrival_s: float, arrived: int) -> None:  # fmt: skip
        """Take the runner's counters at a decision (or when it hands back)."""
        s: Simulator = self  # type: ignore[assignment]
        s.now, s.running, s.held = now, running, deque(held)
        s.active = running + queued + len(held)
        s.last_arrival_s, s._next_id = last_arrival_s, arrived
