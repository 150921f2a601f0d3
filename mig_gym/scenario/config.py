"""Scenario configuration: nested frozen dataclasses whose defaults form the default scenario.

YAML keys are the field names. Tagged unions (arrivals, batch sizes, partitioner, dispatcher) are
told apart by their ``kind`` field. Loading and validation live in :mod:`mig_gym.scenario`; this
module only declares the shape and the per-field limits (``metadata={"min": ..., "max": ...}``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal


def _lim(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False) -> dict:
    """Field metadata for numeric bounds checked by the scenario loader."""
    return {"min": lo, "max": hi, "lo_open": lo_open}


# --------------------------------------------------------------------------- cluster and models
@dataclass(frozen=True)
class ClusterConfig:
    """The GPUs of the server."""

    gpu: str = "A100-80GB"
    num_gpus: int = field(default=8, metadata=_lim(1, 100_000))
    reconfig_s: float = field(default=3.0, metadata=_lim(0.0, 3600.0))
    # A named reconfiguration cost (RECONFIG_PRESETS); the loader sets reconfig_s from it.
    reconfig: Literal["driver", "reload", "orchestrated"] | None = None


# Downtime of one GPU's re-partitioning, seconds (docs/results.md, "Reconfiguration cost").
# These are order-of-magnitude estimates, not measurements: no timing of MIG operations is in
# ../shared/data, so set `cluster.reconfig_s` from your own measurement where it matters.
# driver: destroying and creating the GPU and compute instances (`nvidia-smi mig -dci/-dgi/-cgi/
#   -cci`, NVIDIA MIG User Guide, "Getting started with MIG"); the GPU must have no processes
#   attached. Some 7-14 operations for a full layout, commonly reported at a fraction of a second
#   each: we take 1 s. reload: the same plus starting the server process and loading the model
#   into the new instances: seconds; we take 5 s (the catalogue's 3 s default is of this kind).
# orchestrated: the GPU operator's MIG manager re-templating a node (NVIDIA GPU Operator docs,
#   "MIG support", reconfiguring profiles: it stops the GPU clients, applies the new
#   configuration and restarts the device plugin, which must restart to see new devices,
#   NVIDIA/k8s-device-plugin issue 992), after the operator cordons and drains the node
#   (NVIDIA/gpu-operator issue 262): we take 2 minutes.
RECONFIG_PRESETS = {"driver": 1.0, "reload": 5.0, "orchestrated": 120.0}


@dataclass(frozen=True)
class ModelConfig:
    """One served model, its latency target and its share of the traffic."""

    name: str = "resnet50"
    slo_ms: float = field(default=100.0, metadata=_lim(0.0, 1e7, lo_open=True))
    share: float = field(default=1.0, metadata=_lim(0.0, 1e9))


@dataclass(frozen=True)
class ProfilesConfig:
    """Where service times come from. ``path=None`` means the built-in calibrated profiles."""

    path: str | None = None
    format: Literal["mig_gym", "parvagpu"] = "mig_gym"
    model: str | None = None  # model name for a ParvaGPU file (one model per file)
    interpolation: Literal["loglinear", "loglog", "linear"] = "loglinear"
    extrapolate: bool = False
    # Which batches a (model, size) serves (docs/profiles.md, "Admission"): up to the largest
    # batch measured to run (default), up to the batch before the first measured OOM, or where
    # the interpolated memory line fits.
    admission: Literal["measured", "before_oom", "memory_line"] = "measured"
    # Built-in profiles only: the software stack (docs/profiles.md, "Profile families") and the
    # parametric family's two knobs (floor scale; per-item cost ~ GPCs**-gpc_exponent).
    family: Literal["parvagpu_eager", "tensorrt", "parametric"] = "parvagpu_eager"
    floor_scale: float = field(default=1.0, metadata=_lim(0.0, 100.0))
    gpc_exponent: float = field(default=1.0, metadata=_lim(0.0, 4.0, lo_open=True))


# --------------------------------------------------------------------------- workload
@dataclass(frozen=True)
class PoissonArrivals:
    kind: Literal["poisson"] = "poisson"
    rate_qps: float = field(default=1200.0, metadata=_lim(0.0, 1e9, lo_open=True))


@dataclass(frozen=True)
class MMPPArrivals:
    """Two-state Markov-modulated Poisson process (bursty traffic)."""

    kind: Literal["mmpp"] = "mmpp"
    rate_low_qps: float = field(default=1000.0, metadata=_lim(0.0, 1e9))
    rate_high_qps: float = field(default=4000.0, metadata=_lim(0.0, 1e9, lo_open=True))
    mean_low_s: float = field(default=20.0, metadata=_lim(0.0, 1e9, lo_open=True))
    mean_high_s: float = field(default=5.0, metadata=_lim(0.0, 1e9, lo_open=True))


@dataclass(frozen=True)
class DiurnalArrivals:
    """Sinusoidal rate ``mean * (1 + amplitude * sin(2 pi (t - peak_at_s) / period_s + pi/2))``."""

    kind: Literal["diurnal"] = "diurnal"
    rate_qps: float = field(default=2000.0, metadata=_lim(0.0, 1e9, lo_open=True))
    amplitude: float = field(default=0.5, metadata=_lim(0.0, 1.0))
    period_s: float = field(default=86_400.0, metadata=_lim(0.0, 1e12, lo_open=True))
    peak_at_s: float = field(default=43_200.0, metadata=_lim(0.0, 1e12))


@dataclass(frozen=True)
class TraceArrivals:
    """Arrival timestamps replayed from a CSV or JSONL file."""

    kind: Literal["trace"] = "trace"
    path: str = ""
    column: str = "TIMESTAMP"
    time_unit_s: float = field(default=1.0, metadata=_lim(0.0, 1e9, lo_open=True))
    rate_qps: float | None = field(default=None, metadata=_lim(0.0, 1e9, lo_open=True))
    loop: bool = False


Arrivals = PoissonArrivals | MMPPArrivals | DiurnalArrivals | TraceArrivals


@dataclass(frozen=True)
class LognormalBatch:
    """Log-normal query sizes, rounded to integers and truncated to ``[min, max]``."""

    kind: Literal["lognormal"] = "lognormal"
    median: float = field(default=8.0, metadata=_lim(0.0, 1e6, lo_open=True))
    sigma: float = field(default=0.9, metadata=_lim(0.0, 10.0))
    min: int = field(default=1, metadata=_lim(1, 1_000_000))
    max: int = field(default=128, metadata=_lim(1, 1_000_000))


@dataclass(frozen=True)
class FixedBatch:
    kind: Literal["fixed"] = "fixed"
    value: int = field(default=8, metadata=_lim(1, 1_000_000))


@dataclass(frozen=True)
class EmpiricalBatch:
    """A probability mass function over batch sizes (weights are normalised)."""

    kind: Literal["empirical"] = "empirical"
    pmf: dict[int, float] = field(default_factory=lambda: {1: 1.0})


@dataclass(frozen=True)
class TraceColumnBatch:
    """Batch size from a column of the arrivals trace: ``ceil(value / per_item)`` clipped to max."""

    kind: Literal["trace_column"] = "trace_column"
    column: str = "ContextTokens"
    per_item: float = field(default=128.0, metadata=_lim(0.0, 1e9, lo_open=True))
    max: int = field(default=128, metadata=_lim(1, 1_000_000))


Batch = LognormalBatch | FixedBatch | EmpiricalBatch | TraceColumnBatch


@dataclass(frozen=True)
class PhaseConfig:
    """From ``start_s`` on, override arrivals, batch sizes, model mix and/or load."""

    start_s: float = field(default=0.0, metadata=_lim(0.0, 1e12))
    arrivals: Arrivals | None = None
    batch: Batch | None = None
    mix: dict[str, float] | None = None
    load: float | None = field(default=None, metadata=_lim(0.0, 1e6, lo_open=True))


@dataclass(frozen=True)
class WorkloadConfig:
    arrivals: Arrivals = field(default_factory=PoissonArrivals)
    batch: Batch = field(default_factory=LognormalBatch)
    service_cv: float = field(default=0.0, metadata=_lim(0.0, 10.0))
    phases: tuple[PhaseConfig, ...] = ()
    load: float = field(default=1.0, metadata=_lim(0.0, 1e6, lo_open=True))


# --------------------------------------------------------------------------- policies
@dataclass(frozen=True)
class PARISConfig:
    """PARIS partitioner (docs/policies.md); the knee rule is our reconstruction, see docs."""

    kind: Literal["paris"] = "paris"
    knee: Literal["utilization", "sla", "both"] = "sla"
    theta: float = field(default=0.9, metadata=_lim(0.0, 1.0, lo_open=True))
    beta: float = field(default=0.5, metadata=_lim(0.0, 10.0, lo_open=True))
    weighting: Literal["gpc_time", "count", "batch"] = "gpc_time"


@dataclass(frozen=True)
class PARISTunedConfig:
    """Our extension: PARIS candidates over a small grid, scored by short simulations."""

    kind: Literal["paris_tuned"] = "paris_tuned"
    trial_queries: int = field(default=20_000, metadata=_lim(100, 10_000_000))


@dataclass(frozen=True)
class PeriodicPARISConfig:
    """PARIS re-planned every ``epoch_s`` on the last window's observed batch sizes, blended with
    weight ``prior`` of the scenario's own distribution and mix (our reconstruction:
    :mod:`mig_gym.policies.partition.periodic`).

    ``paris`` holds the PARIS parameters; YAML and policy strings may also give them flat
    (``{kind: periodic_paris, knee: sla}``, ``periodic_paris[weighting=count]``), see ``FLAT``.
    """

    FLAT: ClassVar[tuple[str, ...]] = ("paris",)  # nested fields whose keys may be given flat

    kind: Literal["periodic_paris"] = "periodic_paris"
    epoch_s: float = field(default=60.0, metadata=_lim(0.0, 1e9, lo_open=True))
    prior: float = field(default=0.01, metadata=_lim(0.0, 0.99))
    paris: PARISConfig = field(default_factory=PARISConfig)


@dataclass(frozen=True)
class HomogeneousConfig:
    kind: Literal["homogeneous"] = "homogeneous"
    gpcs: int = field(default=7, metadata=_lim(1, 7))


@dataclass(frozen=True)
class FixedLayoutConfig:
    """Explicit layouts as partition sizes per GPU; one entry is repeated over all GPUs."""

    kind: Literal["fixed"] = "fixed"
    layouts: tuple[tuple[int, ...], ...] = ((7,),)


@dataclass(frozen=True)
class RandomLayoutConfig:
    kind: Literal["random"] = "random"


Partitioner = (
    PARISConfig
    | PARISTunedConfig
    | PeriodicPARISConfig
    | HomogeneousConfig
    | FixedLayoutConfig
    | RandomLayoutConfig
)


@dataclass(frozen=True)
class ELSAConfig:
    kind: Literal["elsa"] = "elsa"
    alpha: float = field(default=1.0, metadata=_lim(0.0, 100.0, lo_open=True))
    scan_from: Literal["smallest", "home"] = "smallest"


@dataclass(frozen=True)
class SimpleDispatcherConfig:
    """A dispatcher without parameters. ``fifs`` is the central queue (pull); ``fifs_push`` its
    push form (the partition free soonest), see :mod:`mig_gym.policies.registry`."""

    kind: Literal["fifs", "fifs_push", "earliest_finish", "jsq", "round_robin", "random"] = "fifs"


Dispatcher = ELSAConfig | SimpleDispatcherConfig


@dataclass(frozen=True)
class PolicyConfig:
    partitioner: Partitioner = field(default_factory=PARISConfig)
    dispatcher: Dispatcher = field(default_factory=ELSAConfig)


# --------------------------------------------------------------------------- run, env, faults
@dataclass(frozen=True)
class RunConfig:
    num_queries: int = field(default=100_000, metadata=_lim(1, 10**10))
    warmup_queries: int = field(default=1_000, metadata=_lim(0, 10**10))
    drain: bool = True
    window_s: float = field(default=10.0, metadata=_lim(0.0, 1e9, lo_open=True))


@dataclass(frozen=True)
class RewardWeights:
    """Weights of the environments' reward terms (:mod:`mig_gym.envs.rewards`). By default only
    ``sla_violation`` counts, and an episode's return is minus its ``sla_violation_rate`` (the
    score the tables report); ``latency``, ``reconfig`` and ``invalid_action`` are opt-in
    shaping terms."""

    sla_violation: float = 1.0
    latency: float = 0.0
    reconfig: float = 0.0
    invalid_action: float = 0.0


@dataclass(frozen=True)
class EnvConfig:
    queries_per_episode: int = field(default=2_000, metadata=_lim(1, 10**9))
    epoch_s: float = field(default=60.0, metadata=_lim(0.0, 1e9, lo_open=True))
    epochs_per_episode: int = field(default=24, metadata=_lim(1, 10**6))
    reward_weights: RewardWeights = field(default_factory=RewardWeights)


@dataclass(frozen=True)
class FaultConfig:
    """GPU ``gpu`` fails at ``down_at_s`` and, unless ``up_at_s`` is None, recovers then."""

    gpu: int = field(default=0, metadata=_lim(0, 100_000))
    down_at_s: float = field(default=0.0, metadata=_lim(0.0, 1e12))
    up_at_s: float | None = field(default=None, metadata=_lim(0.0, 1e12))


@dataclass(frozen=True)
class Scenario:
    """A whole experiment. ``Scenario()`` is the default scenario (paper_resnet50)."""

    name: str = "paper_resnet50"
    seed: int = field(default=0, metadata=_lim(0, 2**63 - 1))
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    models: tuple[ModelConfig, ...] = (ModelConfig(),)
    profiles: ProfilesConfig = field(default_factory=ProfilesConfig)
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    run: RunConfig = field(default_factory=RunConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    faults: tuple[FaultConfig, ...] = ()
    base_dir: str = "."  # directory that relative paths resolve against (set by the loader)

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.models)

    def slo_s(self, model: str) -> float:
        for m in self.models:
            if m.name == model:
                return m.slo_ms / 1000.0
        raise KeyError(model)
