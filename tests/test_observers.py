"""Tests of mig_gym.sim.observers: arrival observers registered with the simulator.

Batch counts belong to whoever reads them (a re-planning partitioner, Partition-v0): each owner's
counts see every arrival once, in arrival order, and taking one owner's counts leaves the others'.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from mig_gym.runs.build import build
from mig_gym.sim.observers import BatchCounts
from tests.test_simulator import make_sim

TIMES = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
BATCHES = [1, 2, 1, 4, 2, 1]
MODELS = [0, 1, 0, 0, 1, 0]


def test_batch_counts_take_clear_and_blocks():
    c = BatchCounts(2)
    for m, b in zip(MODELS, BATCHES, strict=True):
        c.on_arrival(m, b)
    assert c.seen()
    assert c.counts == [{1: 3, 4: 1}, {2: 2}]
    block = BatchCounts(2)
    block.on_block(np.array(MODELS, np.int32), np.array(BATCHES, np.int32))
    assert block.counts == c.counts
    assert list(block.counts[0]) == [1, 4]  # keys in order of first arrival
    assert c.take() == [{1: 3, 4: 1}, {2: 2}]
    assert not c.seen() and c.counts == [{}, {}]
    block.clear()
    assert block.counts == [{}, {}]
    with pytest.raises(ValueError, match="num_models"):
        BatchCounts(0)


def test_a_block_counts_as_its_arrivals_one_by_one_keys_in_first_arrival_order():
    rng = np.random.default_rng(3)
    for n in (1, 7, 500):
        one, block = BatchCounts(3), BatchCounts(3)
        one.on_arrival(2, 5)  # keys already there keep their place
        block.on_arrival(2, 5)
        m, b = rng.integers(0, 3, n), rng.integers(1, 40, n)
        for mm, bb in zip(m.tolist(), b.tolist(), strict=True):
            one.on_arrival(mm, bb)
        block.on_block(m.astype(np.int32), b.astype(np.int32))
        assert block.counts == one.counts
        assert [list(c) for c in block.counts] == [list(c) for c in one.counts]


@pytest.mark.parametrize("chunk", [1, 4])
def test_every_arrival_reaches_every_observer_once(chunk):
    sim = make_sim(TIMES, BATCHES, models=MODELS, num_models=2, chunk=chunk,
                   gpus=((7,),), plan_models=[[0]])  # fmt: skip
    a, b = BatchCounts(2), BatchCounts(2)
    sim.observe(a)
    sim.observe(b)
    assert sim.observers == (a, b)
    assert sim.static_run().not_static is not None and "observer" in sim.static_run().not_static
    sim.run()
    sim.check_conservation()
    # model 1 is not hosted: its queries are rejected, but they still arrived
    assert a.counts == b.counts == [{1: 3, 4: 1}, {2: 2}]
    a.take()
    assert b.counts == [{1: 3, 4: 1}, {2: 2}]  # one owner's take leaves the other's counts


def test_periodic_paris_counts_its_own_arrivals():
    run = build(None, "periodic_paris[epoch_s=1]+elsa", 0, 3000)
    counts = run.policy.partitioner.counts
    assert counts is not None and run.sim.observers == (counts,)
    mine = BatchCounts(run.sim.num_models)
    run.sim.observe(mine)
    seen = Counter()
    epochs = 0
    while (d := run.sim.run_until_decision()) is not None:
        if d.kind == "epoch":
            epochs += 1
            assert counts.counts == mine.counts  # the partitioner has not re-planned yet
            run.step_epoch(d)
            assert not counts.seen()  # taken by the re-plan
            for m, c in enumerate(mine.take()):
                seen.update({(m, b): n for b, n in c.items()})
    for m, c in enumerate(mine.take()):
        seen.update({(m, b): n for b, n in c.items()})
    assert epochs > 0
    assert sum(seen.values()) == run.recorder.arrived == 3000
