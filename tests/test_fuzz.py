"""Property-based robustness: bad input never crashes mig_gym with an unexpected exception.

- Scenario dicts and YAML files, valid and broken (unknown keys, wrong types, out-of-range
  numbers, NaN/inf, missing or extra sections, bad kinds, empty or non-YAML files): each either
  loads and runs a tiny simulation, or fails with ``ScenarioError``/``FileNotFoundError`` whose
  every problem names a field.
- Environment actions of any shape and type: never a crash; invalid ones are counted.
- Trace files (empty, header only, unsorted, non-numeric, missing column, NaN, duplicated
  timestamps, one row): a valid run, or ``TraceError``/``WorkloadError``/``FileNotFoundError``
  naming the file and the column, line or problem.

Valid but very slow inputs (e.g. a 1 ns metrics window over a long run) are loaded but not run:
see ``affordable``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import mig_gym
from mig_gym import hardware
from mig_gym.envs.dispatch import DispatchEnv
from mig_gym.envs.partition import PartitionEnv
from mig_gym.hardware.profiles import ProfileRangeError
from mig_gym.policies import PolicyError
from mig_gym.scenario import ScenarioError, load_scenario
from mig_gym.scenario import config as C
from mig_gym.workload import WorkloadError
from mig_gym.workload.arrivals import mmpp_mean_rate
from mig_gym.workload.traces import TraceError, read_trace

# Fixed examples in CI; MIG_GYM_FUZZ_EXAMPLES=5000 explores (randomly) much further.
_DEEP = int(os.environ.get("MIG_GYM_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=_DEEP or 80,
    deadline=None,
    derandomize=not _DEEP,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
RUN_ERRORS = (ScenarioError, WorkloadError, ProfileRangeError, PolicyError, FileNotFoundError)
TINY = 200  # queries per fuzzed simulation


@contextlib.contextmanager
def watchdog(seconds: int, what: object) -> Iterator[None]:
    """Fail (instead of hanging the suite) if the block runs longer than ``seconds``."""

    def fire(signum: int, frame: object) -> None:
        raise AssertionError(f"timed out after {seconds} s: {what!r}")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# --------------------------------------------------------------------------- scenarios
BASES: list[dict[str, Any]] = [
    {"name": "one", "cluster": {"num_gpus": 2}, "run": {"num_queries": 500, "warmup_queries": 10}},
    {
        "name": "mix",
        "cluster": {"gpu": "A100-80GB", "num_gpus": 3, "reconfig_s": 1.0},
        "models": [
            {"name": "resnet50", "slo_ms": 100, "share": 2},
            {"name": "bert", "slo_ms": 900, "share": 1},
        ],
        "workload": {
            "arrivals": {
                "kind": "mmpp",
                "rate_low_qps": 200,
                "rate_high_qps": 600,
                "mean_low_s": 0.2,
                "mean_high_s": 0.1,
            },
            "batch": {"kind": "empirical", "pmf": {1: 1.0, 8: 2.0, 32: 0.5}},
            "service_cv": 0.2,
        },
        "policy": {
            "partitioner": {"kind": "homogeneous", "gpcs": 3},
            "dispatcher": {"kind": "jsq"},
        },
        "faults": [{"gpu": 1, "down_at_s": 0.1, "up_at_s": 0.3}],
    },
    {
        "name": "drift",
        "cluster": {"num_gpus": 2},
        "workload": {
            "arrivals": {
                "kind": "diurnal",
                "rate_qps": 400,
                "amplitude": 0.8,
                "period_s": 2.0,
                "peak_at_s": 0.5,
            },
            "batch": {"kind": "lognormal", "median": 4, "sigma": 1.0, "min": 1, "max": 64},
            "phases": [{"start_s": 0.2, "batch": {"kind": "fixed", "value": 32}, "load": 1.5}],
            "load": 0.8,
        },
        "policy": {
            "partitioner": {"kind": "periodic_paris", "epoch_s": 0.2},
            "dispatcher": {"kind": "elsa", "alpha": 0.9},
        },
        "run": {"window_s": 0.1},
    },
    {
        "name": "fixed",
        "cluster": {"gpu": "A100-80GB", "num_gpus": 2},
        "models": [{"name": "resnet50", "slo_ms": 200}],
        "policy": {
            "partitioner": {"kind": "fixed", "layouts": [[4, 2, 1]]},
            "dispatcher": {"kind": "earliest_finish"},
        },
        "env": {"queries_per_episode": 50, "reward_weights": {"latency": 0.5}},
    },
]
KINDS = [
    "poisson",
    "mmpp",
    "diurnal",
    "trace",
    "lognormal",
    "fixed",
    "empirical",
    "trace_column",
    "paris",
    "paris_tuned",
    "periodic_paris",
    "homogeneous",
    "random",
    "elsa",
    "fifs",
    "jsq",
    "round_robin",
    "earliest_finish",
    "teleport",
    "",
    None,
    3,
]
WORDS = [
    "A100-80GB",
    "A30",
    "H100-80GB",
    "V100",
    "resnet50",
    "bert",
    "mobilenetv2",
    "nope",
    "sla",
    "utilization",
    "both",
    "smallest",
    "home",
    "loglinear",
    "parvagpu",
    "",
]
SECTIONS = [
    "name",
    "seed",
    "cluster",
    "models",
    "profiles",
    "workload",
    "policy",
    "run",
    "env",
    "faults",
]

values = st.one_of(
    st.integers(-3, 10),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1e-9, 0.5, 1.0, 7.0, 1e9, math.nan, math.inf, -1.0]),
    st.sampled_from(WORDS),
    st.text(max_size=6),
    st.none(),
    st.booleans(),
    st.lists(st.integers(-2, 10), max_size=3),
    st.dictionaries(st.sampled_from(["a", "kind", "name", "1"]), st.integers(-1, 3), max_size=2),
)

tweaks = st.one_of(
    st.integers(-1, 8),
    st.sampled_from([0.0, 1e-6, 0.05, 0.5, 0.9, 1.0, 1.5, 3.0, 100.0, 1e7, 2**63, -0.0]),
)


def leaves(d: Any, path: tuple = ()) -> list[tuple]:
    """Every path into nested dicts/lists (containers included)."""
    out = [path] if path else []
    if isinstance(d, dict):
        for k, v in d.items():
            out += leaves(v, (*path, k))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            out += leaves(v, (*path, i))
    return out


def parent_of(d: Any, path: tuple) -> Any:
    for k in path[:-1]:
        d = d[k]
    return d


@st.composite
def scenario_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """A valid base scenario with 0-4 random mutations."""
    d = copy.deepcopy(draw(st.sampled_from(BASES)))
    d["run"] = {**d.get("run", {}), "num_queries": TINY, "warmup_queries": 0}
    for _ in range(draw(st.integers(0, 4))):
        op = draw(
            st.sampled_from(["tweak", "tweak", "set", "set", "del", "add", "kind", "section"])
        )
        paths = leaves(d)
        numeric = [p for p in paths if type(parent_of(d, p)[p[-1]]) in (int, float)]
        if op == "tweak" and numeric:  # a plausible number, often at or past a limit
            p = draw(st.sampled_from(numeric))
            parent_of(d, p)[p[-1]] = draw(tweaks)
        elif op == "section":
            d[draw(st.sampled_from([*SECTIONS, "extra"]))] = draw(values)
        elif not paths:
            continue
        elif op == "set":
            p = draw(st.sampled_from(paths))
            parent_of(d, p)[p[-1]] = draw(values)
        elif op == "del":
            p = draw(st.sampled_from(paths))
            del parent_of(d, p)[p[-1]]
        elif op == "add":
            mappings = [p for p in [(), *paths] if isinstance(parent_of(d, (*p, 0)), dict)]
            p = draw(st.sampled_from(mappings))
            parent_of(d, (*p, 0))[draw(st.sampled_from(["colour", "kind", "rate", "max"]))] = draw(
                values
            )
        else:
            kinds = [p for p in paths if p[-1] == "kind"] or paths
            p = draw(st.sampled_from(kinds))
            parent_of(d, p)[p[-1]] = draw(st.sampled_from(KINDS))
    return d


def affordable(sc: C.Scenario) -> bool:
    """Whether a tiny run of ``sc`` is cheap: valid scenarios can also be slow on purpose (a
    1 ns metrics window over a long run, 100,000 GPUs, microsecond MMPP states)."""
    wl = sc.workload
    if sc.cluster.num_gpus > 16 or len(sc.models) > 4:
        return False
    if mig_gym.runs.build.max_batch(sc) > 4096:
        return False
    horizon, shortest = 0.0, math.inf
    for ph_load, arr in [
        (1.0, wl.arrivals),
        *((ph.load or 1.0, ph.arrivals or wl.arrivals) for ph in wl.phases),
    ]:
        load = wl.load * ph_load
        if isinstance(arr, C.MMPPArrivals):
            rate = (
                mmpp_mean_rate(arr.rate_low_qps, arr.rate_high_qps, arr.mean_low_s, arr.mean_high_s)
                * load
            )
            shortest = min(shortest, arr.mean_low_s, arr.mean_high_s)
        elif isinstance(arr, C.DiurnalArrivals):
            rate = arr.rate_qps * load * max(1.0 - arr.amplitude, 0.05)
        else:
            rate = arr.rate_qps * load
        horizon = max(horizon, TINY / rate + max((ph.start_s for ph in wl.phases), default=0))
    part = sc.policy.partitioner
    epochs = horizon / part.epoch_s if isinstance(part, C.PeriodicPARISConfig) else 0.0
    trials = part.trial_queries if isinstance(part, C.PARISTunedConfig) else 0
    faults = max((f.down_at_s for f in sc.faults), default=0.0)
    return (
        horizon / sc.run.window_s < 2e4
        and horizon / shortest < 2e4
        and epochs < 500
        and trials <= 2_000
        and faults < 1e6
    )


def check_problems(e: ScenarioError, label: str | None = None) -> None:
    """Every problem of a ScenarioError names a field (``path: message``) or the file."""
    assert e.problems, e
    for p in e.problems:
        field, sep, msg = p.partition(": ")
        assert sep and field and msg, p
    if label is not None:
        assert str(e).startswith(label), str(e)


def load_and_run(source: Any, label: str | None = None) -> None:
    """The property: load, then (if affordable) run a tiny simulation; only user errors."""
    try:
        sc = load_scenario(source)
    except ScenarioError as e:
        check_problems(e, label)
        event("rejected by the loader")
        return
    if not affordable(sc):
        event("loaded, too slow to run")
        return
    with watchdog(20, source):
        try:
            s = mig_gym.simulate(sc, num_queries=TINY)
        except RUN_ERRORS as e:
            assert str(e), type(e)
            event(f"loaded, run refused: {type(e).__name__}")
            return
    assert s.conserved and s.arrived <= TINY
    event("loaded and ran")


@FUZZ
@given(scenario_dicts())
def test_fuzzed_scenario_dicts(d):
    load_and_run(d)


MODELS = ("resnet50", "bert", "mobilenetv2", "vgg16")


def profile_rows(gpu: str, models: list[str]) -> str:
    """A mig_gym profile CSV for a GPU without built-in profiles (linear in the batch)."""
    rows = ["model,gpu,gpcs,batch,latency_ms,memory_gb"]
    for m in models:
        for k in hardware.gpu_spec(gpu).sizes:
            rows += [
                f"{m},{gpu},{k},1,{3 + 7 / k:.3f},0.5",
                f"{m},{gpu},{k},256,{40 + 900 / k:.3f},6",
            ]
    return "\n".join(rows) + "\n"


@st.composite
def edge_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """Valid scenarios with values at or near their limits (zero shares, sigma 0, amplitude 1,
    zero reconfiguration time, 1 us SLAs, GPUs failing at t=0, tiny windows...)."""
    gpu = draw(st.sampled_from(["A100-80GB", "A100-80GB", "A30", "H100-80GB", "A100-40GB"]))
    n_gpus = draw(st.integers(1, 5))
    names = draw(
        st.lists(st.sampled_from(MODELS), min_size=1, max_size=min(3, n_gpus), unique=True)
    )
    shares = [draw(st.sampled_from([0.0, 0.5, 1.0, 5.0])) for _ in names]
    if not any(shares):
        shares[0] = 1.0
    models = [
        {"name": m, "slo_ms": draw(st.sampled_from([0.001, 5.0, 100.0, 1e4])), "share": sh}
        for m, sh in zip(names, shares, strict=True)
    ]
    rate = st.sampled_from([20.0, 300.0, 3000.0])
    arrivals = draw(st.sampled_from(["poisson", "mmpp", "diurnal"]))
    arr: dict[str, Any] = {"kind": arrivals}
    if arrivals == "poisson":
        arr["rate_qps"] = draw(rate)
    elif arrivals == "mmpp":
        arr.update(
            rate_low_qps=draw(st.sampled_from([0.0, 50.0])),
            rate_high_qps=draw(rate),
            mean_low_s=draw(st.sampled_from([0.01, 0.5])),
            mean_high_s=draw(st.sampled_from([0.01, 2.0])),
        )
    else:
        arr.update(
            rate_qps=draw(rate),
            amplitude=draw(st.sampled_from([0.0, 0.5, 1.0])),
            period_s=draw(st.sampled_from([0.1, 50.0])),
            peak_at_s=draw(st.sampled_from([0.0, 1e6])),
        )
    lo = draw(st.integers(1, 256))
    batch = draw(
        st.sampled_from(
            [
                {
                    "kind": "lognormal",
                    "median": draw(st.sampled_from([0.01, 8.0, 1e4])),
                    "sigma": draw(st.sampled_from([0.0, 0.9, 10.0])),
                    "min": lo,
                    "max": draw(st.integers(lo, 256)),
                },
                {"kind": "fixed", "value": draw(st.sampled_from([1, 64, 256]))},
                {
                    "kind": "empirical",
                    "pmf": draw(
                        st.dictionaries(
                            st.integers(1, 256),
                            st.sampled_from([0.0, 0.1, 3.0]),
                            min_size=1,
                            max_size=4,
                        )
                    ),
                },
            ]
        )
    )
    if batch["kind"] == "empirical" and not any(batch["pmf"].values()):
        batch["pmf"][next(iter(batch["pmf"]))] = 1.0
    phases, start = [], 0.0
    for _ in range(draw(st.integers(0, 2))):
        start += draw(st.sampled_from([0.001, 0.3, 5.0]))
        ph: dict[str, Any] = {"start_s": start}
        if draw(st.booleans()):
            ph["load"] = draw(st.sampled_from([0.2, 3.0]))
        if draw(st.booleans()):
            ph["batch"] = {"kind": "fixed", "value": draw(st.sampled_from([1, 200]))}
        if draw(st.booleans()):
            ph["mix"] = {names[-1]: 1.0}
        phases.append(ph)
    sizes = hardware.gpu_spec(gpu).sizes
    layouts = [list(lay.sizes) for lay in hardware.valid_layouts(gpu)]
    partitioner = draw(
        st.sampled_from(
            [
                {
                    "kind": "paris",
                    "knee": draw(st.sampled_from(["utilization", "sla", "both"])),
                    "theta": draw(st.sampled_from([1e-6, 0.5, 1.0])),
                    "beta": draw(st.sampled_from([0.01, 10.0])),
                    "weighting": draw(st.sampled_from(["gpc_time", "count", "batch"])),
                },
                {"kind": "paris_tuned", "trial_queries": 100},
                {"kind": "periodic_paris", "epoch_s": draw(st.sampled_from([0.05, 1.0]))},
                {"kind": "homogeneous", "gpcs": draw(st.sampled_from(sizes))},
                {"kind": "fixed", "layouts": [draw(st.sampled_from(layouts))]},
                {"kind": "random"},
            ]
        )
    )
    dispatcher = draw(
        st.sampled_from(
            [
                {
                    "kind": "elsa",
                    "alpha": draw(st.sampled_from([0.01, 1.0, 100.0])),
                    "scan_from": draw(st.sampled_from(["smallest", "home"])),
                },
                *({"kind": k} for k in ("fifs", "earliest_finish", "jsq", "round_robin", "random")),
            ]
        )
    )
    faults = []
    for _ in range(draw(st.integers(0, 2))):
        down = draw(st.sampled_from([0.0, 0.05, 1.0]))
        faults.append(
            {
                "gpu": draw(st.integers(0, n_gpus - 1)),
                "down_at_s": down,
                "up_at_s": draw(st.sampled_from([None, down + 0.01, down + 2.0])),
            }
        )
    d = {
        "name": "edge",
        "seed": draw(st.sampled_from([0, 2**63 - 1])),
        "cluster": {
            "gpu": gpu,
            "num_gpus": n_gpus,
            "reconfig_s": draw(st.sampled_from([0.0, 0.01, 3.0])),
        },
        "models": models,
        "workload": {
            "arrivals": arr,
            "batch": batch,
            "phases": phases,
            "service_cv": draw(st.sampled_from([0.0, 0.5, 10.0])),
            "load": draw(st.sampled_from([0.2, 1.0, 4.0])),
        },
        "policy": {"partitioner": partitioner, "dispatcher": dispatcher},
        "run": {
            "num_queries": TINY,
            "warmup_queries": draw(st.sampled_from([0, 199])),
            "drain": draw(st.booleans()),
            "window_s": draw(st.sampled_from([0.05, 10.0])),
        },
        "faults": faults,
    }
    if gpu != "A100-80GB":
        d["profiles"] = {"path": "prof.csv", "extrapolate": draw(st.booleans())}
    return d


@FUZZ
@given(edge_scenarios())
def test_valid_edge_scenarios_run(d):
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "prof.csv").write_text(
            profile_rows(d["cluster"]["gpu"], [m["name"] for m in d["models"]])
        )
        load_and_run({**d, "base_dir": tmp})


BROKEN_YAML = st.sampled_from(
    [
        "",
        "~",
        "42",
        "- 1\n- 2\n",
        "{",
        "cluster: [1, 2",
        "cluster:\n\t num_gpus: 2\n",
        "name: 2023-13-45\n",
        "seed: !!int abc\n",
        "a: !!python/object:os.system x\n",
        "cluster: &c {num_gpus: *c}\n",
        "models: &m [*m]\n",
        "%YAML 9.9\n---\nname: x\n",
        "[" * 2000 + "]" * 2000,
        "? [1, 2]\n: 3\n",
        "run: {num_queries: 1e400}\n",
        "profiles: builtin\n",
        "profiles: {path: nope.csv}\n",
        "workload: {arrivals: {kind: trace, path: nope.csv}}\n",
    ]
)


@st.composite
def yaml_texts(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["dict", "dict", "broken", "text", "bytes"]))
    if kind == "dict":
        return yaml.safe_dump(draw(scenario_dicts()), allow_unicode=True).encode()
    if kind == "broken":
        return draw(BROKEN_YAML).encode()
    if kind == "text":
        return draw(st.text(max_size=40)).encode("utf-8", "surrogatepass")
    return draw(st.binary(max_size=40))


@FUZZ
@given(yaml_texts())
def test_fuzzed_scenario_files(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.yaml"
        path.write_bytes(text)
        load_and_run(path, label=str(path))
    with pytest.raises(FileNotFoundError, match="scenario file not found"):
        load_scenario(Path(tmp) / "s.yaml")  # the folder is gone


# --------------------------------------------------------------------------- env actions
ENV_SCENARIO = {
    "name": "envfuzz",
    "cluster": {"num_gpus": 2},
    "models": [{"name": "resnet50", "slo_ms": 100}, {"name": "bert", "slo_ms": 900}],
    "run": {"num_queries": 1000, "warmup_queries": 0},
    "env": {"queries_per_episode": 40, "epoch_s": 0.05, "epochs_per_episode": 4},
}
_ENVS: dict[str, Any] = {}


def env(kind: str) -> Any:
    if kind not in _ENVS:
        e = DispatchEnv(ENV_SCENARIO) if kind == "dispatch" else PartitionEnv(ENV_SCENARIO)
        e.reset(seed=0)
        _ENVS[kind] = e
    return _ENVS[kind]


numbers = st.one_of(
    st.integers(-(2**70), 2**70),
    st.integers(-2, 60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 7, 13, 2.0, 2.5, -0.0, math.nan, math.inf]),
)
actions = st.one_of(
    numbers,
    st.none(),
    st.text(max_size=4),
    st.binary(max_size=3),
    st.booleans(),
    st.complex_numbers(max_magnitude=10),
    st.lists(numbers, max_size=4),
    st.lists(st.lists(st.integers(0, 5), max_size=2), max_size=3),
    st.tuples(st.integers(-1, 40), st.integers(-1, 40)),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    st.builds(
        lambda xs, dt: np.asarray(xs).astype(dt),
        st.lists(st.integers(0, 40), max_size=4),
        st.sampled_from([np.int64, np.int8, np.uint16, np.float32, np.float64, np.bool_]),
    ),
    st.builds(
        lambda x, shape: np.full(shape, x),
        st.integers(0, 40),
        st.sampled_from([(), (1,), (2,), (1, 1), (2, 1), (0,)]),
    ),
)


def _boolish(x: Any) -> bool:
    if isinstance(x, bool | np.bool_):
        return True
    if isinstance(x, list | tuple):
        return any(_boolish(v) for v in x)
    return isinstance(x, np.ndarray) and x.dtype.kind == "b"


def _integral(x: Any) -> tuple[list[int], tuple[int, ...]] | None:
    """The entries and shape of an action if it is made of finite integral numbers (booleans are
    not numbers here), else None."""
    if isinstance(x, str | bytes | dict | complex) or x is None or _boolish(x):
        return None
    try:
        a = np.asarray(x)
    except (ValueError, TypeError):
        return None
    if a.dtype.kind == "O":
        try:
            a = a.astype(np.float64)
        except (TypeError, ValueError, OverflowError):
            return None
    if a.dtype.kind not in "iuf":
        return None
    shape = a.shape
    a = a.astype(np.float64).reshape(-1)
    if not np.all(np.isfinite(a)) or np.any(a != np.floor(a)):
        return None
    return [int(v) for v in a], shape


@FUZZ
@given(st.lists(actions, min_size=1, max_size=8))
def test_dispatch_env_any_action(acts):
    e = env("dispatch")
    for a in acts:
        mask = e.action_masks()
        got = _integral(a)
        entries = got[0] if got is not None else None
        valid = (  # any shape of size 1
            entries is not None
            and len(entries) == 1
            and 0 <= entries[0] < e.slots
            and bool(mask[entries[0]])
        )
        before = e.invalid_actions
        obs, reward, _, truncated, info = e.step(a)
        assert e.observation_space.contains(obs) and math.isfinite(reward)
        assert info["invalid"] is (not valid), (a, mask)
        assert info["invalid_actions"] == before + (not valid)
        if truncated:
            assert info["summary"]["conserved"]
            e.reset()


@FUZZ
@given(st.lists(actions, min_size=1, max_size=4))
def test_partition_env_any_action(acts):
    e = env("partition")
    for a in acts:
        got = _integral(a)
        valid = (  # exactly shape (G,): nothing is flattened
            got is not None and got[1] == (e.num_gpus,) and all(0 <= v < e.choices for v in got[0])
        )
        before = e.invalid_actions
        obs, reward, _, truncated, info = e.step(a)
        assert e.observation_space.contains(obs) and math.isfinite(reward)
        assert info["invalid"] is (not valid), a
        assert info["invalid_actions"] == before + (not valid)
        if truncated:
            e.reset()


@settings(FUZZ, max_examples=_DEEP or 30)
@given(
    edge_scenarios(),
    st.sampled_from([DispatchEnv, PartitionEnv]),
    st.lists(actions, min_size=1, max_size=12),
)
def test_envs_on_edge_scenarios(d, cls, acts):
    """Both environments on odd scenarios (GPUs down at t=0, zero shares, 1 us SLAs...)."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "prof.csv").write_text(
            profile_rows(d["cluster"]["gpu"], [m["name"] for m in d["models"]])
        )
        d = {
            **d,
            "base_dir": tmp,
            "env": {"queries_per_episode": 60, "epoch_s": 0.5, "epochs_per_episode": 3},
        }
        sc = load_scenario(d)
        if not affordable(sc):
            return
        with watchdog(20, d):
            try:
                e = cls(sc)
                obs, _ = e.reset(seed=0)
            except RUN_ERRORS:
                return
            for a in acts:
                obs, reward, _, truncated, info = e.step(a)
                assert e.observation_space.contains(obs) and math.isfinite(reward)
                if truncated:
                    assert info["summary"]["conserved"]
                    e.reset()


def test_env_actions_known_cases():
    """The cases that used to crash or pass silently."""
    d, p = DispatchEnv(ENV_SCENARIO), PartitionEnv(ENV_SCENARIO)
    d.reset(seed=1)
    p.reset(seed=1)
    for a in (math.inf, -math.inf, 2.5, "3", b"1", 10**400, [1, 2], None):
        assert d.step(a)[4]["invalid"], a
    for a in (10**400, ["1", "2"], [0.5, 1], [math.nan, 0], "01"):
        *_, truncated, info = p.step(a)
        assert info["invalid"], a
        if truncated:  # a step after the episode ended is a usage error, not an action
            p.reset()
    assert not p.step(p.current_action())[4]["invalid"]
    good = int(np.flatnonzero(d.action_masks())[0])
    assert not d.step(np.array([good]))[4]["invalid"]


# --------------------------------------------------------------------------- traces
cells = st.one_of(
    st.integers(0, 50).map(lambda i: f"{i * 0.25:g}"),
    st.integers(0, 200).map(str),
    st.sampled_from(
        [
            "",
            " ",
            "nan",
            "NaN",
            "inf",
            "-inf",
            "1e400",
            "abc",
            "0x10",
            "-3",
            "2023-11-16 18:17:03.9799600",
            "2023-11-16T18:17:04+01:00",
            "1,5",
            '"2"',
        ]
    ),
)


@st.composite
def trace_files(draw: st.DrawFn) -> tuple[str, bytes]:
    fmt = draw(st.sampled_from(["csv", "csv", "csv", "jsonl", "json"]))
    header = draw(
        st.sampled_from(
            [
                ["TIMESTAMP"],
                ["TIMESTAMP", "ContextTokens"],
                ["ContextTokens", "TIMESTAMP"],
                [" TIMESTAMP ", "x"],
                ["T", "ContextTokens"],
                [],
            ]
        )
    )
    shape = draw(st.sampled_from(["sorted", "sorted", "unsorted", "dups", "one", "none", "junk"]))
    n = {"one": 1, "none": 0}.get(shape, draw(st.integers(2, 12)))
    if shape == "junk":
        times = [draw(cells) for _ in range(n)]
    else:
        ts = sorted(draw(st.lists(st.integers(0, 400), min_size=n, max_size=n)))
        if shape == "dups":
            ts = [ts[0]] * n
        if shape == "unsorted" and n > 1:
            ts = ts[::-1] if ts[0] != ts[-1] else [*ts[:-1], ts[-1] + 1][::-1]
        times = [f"{t * 0.01:g}" for t in ts]
    tokens = [draw(st.one_of(st.integers(-5, 3000).map(str), cells)) for _ in range(n)]
    short = draw(st.booleans()) and n > 0  # one row without its last cell
    if fmt == "csv":
        lines = [",".join(header)] if header else []
        for i, t in enumerate(times):
            row = [t if h.strip() in ("TIMESTAMP", "T") else tokens[i] for h in header]
            lines.append(",".join(row[:-1] if short and i == n - 1 else row))
        return "trace.csv", ("\n".join(lines) + ("\n" if lines else "")).encode()
    recs = []
    for i, t in enumerate(times):
        rec = {
            h.strip(): (
                _json_value(t) if h.strip() in ("TIMESTAMP", "T") else _json_value(tokens[i])
            )
            for h in header
        }
        if short and i == n - 1 and rec:
            rec.pop(next(iter(rec)))
        recs.append(rec)
    if fmt == "json":
        return "trace.json", json.dumps(recs).encode()
    return "trace.jsonl", "".join(json.dumps(r) + "\n" for r in recs).encode()


def _json_value(text: str) -> Any:
    try:
        x = float(text)
    except ValueError:
        return text
    return int(x) if x.is_integer() and "." not in text and "e" not in text.lower() else x


TRACE_WORDS = (
    "line",
    "record",
    "column",
    "empty",
    "no data rows",
    "span 0 s",
    "not sorted",
    "invalid JSON",
    "expected a JSON object",
    "unknown trace format",
)


def check_trace_error(e: Exception, path: Path) -> None:
    msg = str(e)
    assert str(path) in msg, msg
    if not isinstance(e, FileNotFoundError):
        assert any(w in msg for w in TRACE_WORDS), msg


@FUZZ
@given(trace_files(), st.booleans(), st.sampled_from([None, 50.0]), st.booleans())
def test_fuzzed_trace_files(file, loop, rate, batch_column):
    name, content = file
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(content)
        try:
            tr = read_trace(path, "TIMESTAMP", columns=("ContextTokens",) if batch_column else ())
            assert tr.num_rows >= 1 and np.all(np.diff(tr.times_s) >= 0) and tr.times_s[0] == 0
            event("trace read")
        except (TraceError, FileNotFoundError) as e:
            check_trace_error(e, path)
            event(f"trace refused: {type(e).__name__}")
        arrivals = {"kind": "trace", "path": name, "loop": loop, "rate_qps": rate}
        batch = (
            {"kind": "trace_column", "column": "ContextTokens", "per_item": 128, "max": 64}
            if batch_column
            else {"kind": "fixed", "value": 4}
        )
        sc = {
            "name": "tracefuzz",
            "base_dir": tmp,
            "cluster": {"num_gpus": 2},
            "workload": {"arrivals": arrivals, "batch": batch},
            "run": {"num_queries": TINY, "warmup_queries": 0, "window_s": 1.0},
        }
        with watchdog(20, sc):
            try:
                s = mig_gym.simulate(sc, num_queries=TINY)
            except (WorkloadError, FileNotFoundError) as e:
                check_trace_error(e, path)
                event(f"run refused: {type(e).__name__}")
                return
        event("ran")
        assert s.conserved and s.arrived <= TINY
        assert s.arrived == TINY or not loop  # a looped trace never runs out


# --------------------------------------------------------------------------- found by fuzzing
def test_unhashable_kind_is_a_scenario_error():
    with pytest.raises(ScenarioError, match=r"workload.batch.kind: got \[\]"):
        load_scenario({"workload": {"batch": {"kind": []}}})
    with pytest.raises(ScenarioError, match=r"policy.partitioner.kind: got \{"):
        load_scenario({"policy": {"partitioner": {"kind": {"a": 1}}}})


def test_mmpp_with_short_sojourns_is_fast():
    """A 65,536-arrival window spanning millions of 10 ms sojourns used to take ~20 s."""
    sc = {
        "cluster": {"num_gpus": 1},
        "workload": {
            "arrivals": {
                "kind": "mmpp",
                "rate_low_qps": 0,
                "rate_high_qps": 20,
                "mean_low_s": 0.01,
                "mean_high_s": 0.01,
            },
            "load": 0.2,
        },
    }
    with watchdog(10, sc):
        s = mig_gym.simulate(sc, policy="homo7+fifs", num_queries=TINY)
    assert s.arrived == TINY and s.conserved


def test_partition_env_observation_on_an_a30(tmp_path: Path):
    """A30 has 3 partition sizes, not 5: the observation must still fit the space."""
    (tmp_path / "prof.csv").write_text(profile_rows("A30", ["resnet50"]))
    e = PartitionEnv(
        {
            "base_dir": str(tmp_path),
            "cluster": {"gpu": "A30", "num_gpus": 2},
            "profiles": {"path": "prof.csv"},
            "env": {"epoch_s": 0.5},
        }
    )
    obs, _ = e.reset(seed=0)
    assert e.observation_space.contains(obs)
    assert e.observation_space.contains(e.step(e.current_action())[0])


def test_dispatch_env_episode_without_any_decision():
    """No partition can hold any query (every batch exceeds a 1g's memory): reset has nothing to
    ask; the first step ends the episode (it used to raise RuntimeError), the next one is a usage
    error."""
    sc = {
        "cluster": {"num_gpus": 2},
        "models": [{"name": "resnet50"}],
        "workload": {"batch": {"kind": "fixed", "value": 256}},
        "policy": {"partitioner": {"kind": "fixed", "layouts": [[1, 1, 1, 1, 1, 1, 1]]}},
        "env": {"queries_per_episode": 30},
    }
    e = DispatchEnv(sc)
    _, info = e.reset(seed=0)
    assert not info["action_mask"].any()
    obs, reward, terminated, truncated, info = e.step(0)
    assert not obs.any()
    assert truncated and not terminated and info["summary"]["conserved"]
    # every measured query was rejected: the one step's reward is the score, -1 (not a silent 0)
    assert info["summary"]["sla_violation_rate"] == 1.0
    assert info["reward_terms"]["sla_violation"] == -1.0 and reward == -1.0
    with pytest.raises(RuntimeError, match="after the episode ended"):
        e.step(0)
    e.reset(seed=1)  # and it can start over
