"""Tests for mig_gym.hardware.profiles: fit quality against ParvaGPU, memory boundaries, loaders,
API."""

from __future__ import annotations

import csv
import itertools
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from mig_gym import hardware
from mig_gym.hardware.profiles import (
    ProfileRangeError,
    builtin_profiles,
    linear_profile,
    load_fitted_yaml,
    load_mig_gym_csv,
    load_parvagpu_csv,
    merge,
    read_parvagpu_csv,
)

REPO = Path(__file__).resolve().parents[1]
# The shared data sit next to the repository; MIG_GYM_DATA points elsewhere (e.g. from a worktree).
DATA = Path(os.environ.get("MIG_GYM_DATA", REPO.parent / "shared" / "data"))
PARVA = DATA / "parvagpu_a100_mig_profiles" / "prof_data"
MIGPERF_CV = DATA / "migperf_a100" / "A100-80g" / "infer" / "cv" / "cv_infer.csv"
MODELS = ("bert", "densenet121", "densenet169", "densenet201", "inceptionv3", "mobilenetv2")
MODELS += ("resnet101", "resnet152", "resnet50", "vgg16", "vgg19")
SIZES = (1, 2, 3, 4, 7)
needs_parva = pytest.mark.skipif(
    not PARVA.is_dir(), reason=f"ParvaGPU data not found at {PARVA} (../shared/data is absent)"
)
needs_migperf = pytest.mark.skipif(
    not MIGPERF_CV.is_file(), reason=f"MIGPerf data not found at {MIGPERF_CV}"
)


def usable_mem_gb(gpcs: int) -> float:
    return hardware.gpu_spec("A100-80GB").profile_for(gpcs).mem_gb


# --------------------------------------------------------------------------- built-in fit quality
@needs_parva
@pytest.mark.parametrize("model", MODELS)
def test_builtin_fit_median_relative_error_within_3_percent(model: str) -> None:
    ran, _ = read_parvagpu_csv(PARVA / f"{model}.csv")
    prof = builtin_profiles(models=[model])[model]
    points = [(g, b, lat) for g, pts in ran.items() for b, lat in pts.items()]
    errors = [abs(prof.latency_s(g, b) / lat - 1) for g, b, lat in points]
    assert len(errors) >= 30
    assert np.median(errors) <= 0.03, f"{model}: median relative error {np.median(errors):.3f}"


@needs_parva
@pytest.mark.parametrize("model", MODELS)
def test_builtin_batch_weighted_mean_within_1_percent(model: str) -> None:
    """Mean service time over the paper's batch distribution (lognormal median 8, sigma 0.9, max
    128; up to each size's last measured batch) against the log-linearly interpolated data."""
    from mig_gym.scenario.config import LognormalBatch
    from mig_gym.workload import batch_pmf

    pmf = batch_pmf(LognormalBatch(median=8.0, sigma=0.9, max=128))
    ran, _ = read_parvagpu_csv(PARVA / f"{model}.csv")
    prof = builtin_profiles(models=[model])[model]
    for g, pts in ran.items():
        xs = sorted(pts)
        bs = [b for b in pmf if b <= xs[-1]]
        w = np.array([pmf[b] for b in bs]) / sum(pmf[b] for b in bs)
        meas = np.interp(np.log(bs), np.log(xs), [pts[x] for x in xs])
        fit = np.array([prof.latency_s(g, b) for b in bs])
        assert abs(w @ fit / (w @ meas) - 1) <= 0.01, f"{model} on {g}g"


@needs_parva
@pytest.mark.parametrize("model", MODELS)
def test_memory_model_respects_measured_points_and_oom_boundaries(model: str) -> None:
    ran, oom = read_parvagpu_csv(PARVA / f"{model}.csv")
    prof = builtin_profiles(models=[model])[model]
    for g, pts in ran.items():
        for b in pts:
            assert prof.memory_gb(b) <= usable_mem_gb(g), f"{model} batch {b} ran on {g}g"
    for g, batches in oom.items():
        for b in batches:
            assert prof.memory_gb(b) > usable_mem_gb(g), f"{model} batch {b} OOM on {g}g"


def test_yaml_records_the_capacities_the_hardware_catalogue_gives() -> None:
    text = (REPO / "mig_gym" / "hardware" / "data" / "profiles_a100_80gb.yaml").read_text(
        encoding="utf-8"
    )
    recorded = yaml.safe_load(text)["instance_mem_gb"]
    assert recorded == {g: usable_mem_gb(g) for g in SIZES}


@needs_migperf
@pytest.mark.parametrize("gpcs", [1, 2, 3, 7])
def test_resnet50_within_factor_two_of_migperf(gpcs: int) -> None:
    # MIGPerf used a different software stack; docs/profiles.md reports the ratios (0.63-1.22).
    prof = builtin_profiles(models=["resnet50"])["resnet50"]
    with MIGPERF_CV.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["model_name"] == "resnet50"]
    rows = [r for r in rows if r["mig_profile"].startswith(f"{gpcs}g.")]
    assert len(rows) == 9
    for r in rows:
        ratio = prof.latency_s(gpcs, int(r["batch_size"])) * 1e3 / float(r["latency"])
        assert 0.5 <= ratio <= 2.0, f"{gpcs}g batch {r['batch_size']}: ratio {ratio:.2f}"


# --------------------------------------------------------------------------- built-in shape
@pytest.mark.parametrize("model", MODELS)
def test_builtin_curves_non_decreasing_in_batch(model: str) -> None:
    prof = builtin_profiles()[model]
    assert prof.sizes == SIZES and prof.max_batch == 256
    for g in SIZES:
        curve = prof.latency_curve(g, 256)
        assert np.isnan(curve[0]) and curve.dtype == np.float64
        assert np.all(np.diff(curve[1:]) >= 0)  # strictly increasing in exact arithmetic
        assert curve[256] > curve[1]


@pytest.mark.parametrize("model", MODELS)
def test_builtin_latency_non_increasing_in_size_from_batch_16(model: str) -> None:
    prof = builtin_profiles()[model]
    curves = np.array([prof.latency_curve(g, 256)[16:] for g in SIZES])
    assert np.all(np.diff(curves, axis=0) <= 1e-12)


def test_builtin_scalar_matches_curve_and_range_is_enforced() -> None:
    ps = builtin_profiles()
    curve = ps["resnet50"].latency_curve(3, 256)
    for b in (1, 17, 256):
        assert ps.latency_s("resnet50", 3, b) == curve[b]
    with pytest.raises(ProfileRangeError, match=r"resnet50.*3g.*batch 257.*1\.\.256"):
        ps.latency_s("resnet50", 3, 257)
    with pytest.raises(ProfileRangeError):
        ps["resnet50"].latency_curve(3, 300)
    ext = builtin_profiles(models=["resnet50"], extrapolate=True)["resnet50"]
    assert ext.latency_s(3, 512) > ext.latency_s(3, 256) == curve[256]
    assert len(ext.latency_curve(3, 512)) == 513


def test_builtin_errors_name_what_exists() -> None:
    ps = builtin_profiles()
    with pytest.raises(ValueError, match="A100-80GB"):
        builtin_profiles("V100")
    with pytest.raises(ValueError, match="parvagpu_eager"):
        builtin_profiles(family="onnx")
    with pytest.raises(ValueError, match=r"tensorrt.*mobilenetv2.*resnet50, bert"):
        builtin_profiles(models=["mobilenetv2"], family="tensorrt")
    with pytest.raises(ValueError, match="resnet50"):
        builtin_profiles(models=["alexnet"])
    with pytest.raises(KeyError, match="mobilenetv2"):
        ps["alexnet"]
    with pytest.raises(ValueError, match=r"5g.*\(1, 2, 3, 4, 7\)"):
        ps.latency_s("bert", 5, 1)
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError):
            ps.latency_s("bert", 1, bad)
    assert builtin_profiles("a100_80gb").gpu == "A100-80GB"
    assert builtin_profiles(models=["bert", "vgg16"]).models == ("bert", "vgg16")


def test_profiles_pickle_round_trip() -> None:
    ps = builtin_profiles()
    ps.latency_s("vgg16", 2, 8)  # fill the cache first
    clone = pickle.loads(pickle.dumps(ps))
    assert clone.latency_s("vgg16", 2, 8) == ps.latency_s("vgg16", 2, 8)
    assert clone.memory_gb("vgg16", 8) == ps.memory_gb("vgg16", 8)


# --------------------------------------------------------------------------- table loaders
def write_parvagpu(path: Path, rows: list[tuple]) -> Path:
    header = "Mig instance,Batch size,Workload Number,Throughput,Latency\r\n"
    path.write_text(header + "".join(",".join(map(str, r)) + "\r\n" for r in rows))
    return path


# 1g runs batch 1..4, OOM at 8; 7g runs 1..8. A WN=2 row that must be ignored.
PARVA_ROWS = [
    (1, 1, 1, 200.0, 0.005), (1, 2, 1, 250.0, 0.008), (1, 4, 1, 300.0, 0.013), (1, 8, 1, 0, 0),
    (1, 1, 2, 120.0, 0.009), (7, 1, 1, 200.0, 0.005), (7, 2, 1, 400.0, 0.005),
    (7, 4, 1, 800.0, 0.005), (7, 8, 1, 1100.0, 0.007),
]  # fmt: skip


def test_parvagpu_csv_round_trip(tmp_path: Path) -> None:
    path = write_parvagpu(tmp_path / "toy.csv", PARVA_ROWS)
    prof = load_parvagpu_csv(path, "toy", instance_mem_gb={1: 10.0, 7: 80.0})["toy"]
    assert prof.sizes == (1, 7) and prof.max_batch == 8
    assert prof.ranges == {1: (1, 4), 7: (1, 8)}
    for g, b, wn, _, lat in PARVA_ROWS:
        if wn == 1 and lat:
            assert prof.latency_s(g, b) == lat
    assert prof.memory_gb(4) <= 10.0 < prof.memory_gb(8) <= 80.0
    with pytest.raises(ProfileRangeError, match=r"toy on 1g.*batch 8.*1\.\.4"):
        prof.latency_s(1, 8)
    default = load_parvagpu_csv(path, "toy")["toy"]  # capacities from mig_gym.hardware
    assert default.memory_gb(4) <= 9.75 < default.memory_gb(8)


@needs_parva
def test_parvagpu_loader_on_real_file() -> None:
    ps = load_parvagpu_csv(PARVA / "resnet50.csv", "resnet50")
    prof = ps["resnet50"]
    assert prof.ranges[1] == (1, 32) and prof.ranges[7] == (1, 256)
    assert prof.latency_s(4, 64) == 0.042


def test_parvagpu_warns_about_unmeetable_memory(tmp_path: Path) -> None:
    # OOM at batch 4 on 1g but batch 8 runs on 1g: no line can do both.
    rows = [(1, 1, 1, 1, 0.01), (1, 2, 1, 1, 0.02), (1, 4, 1, 0, 0), (1, 8, 1, 1, 0.08)]
    with pytest.warns(UserWarning, match="cannot meet"):
        load_parvagpu_csv(write_parvagpu(tmp_path / "o.csv", rows), "o", instance_mem_gb={1: 10})


def write_own(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


OWN = """model,gpu,gpcs,batch,latency_ms,memory_gb
m,A100-80GB,1,1,10,1.5
m,A100-80GB,1,4,20,2.0
m,A100-80GB,1,16,60,3.5
m,A100-80GB,7,1,5,
m,A100-80GB,7,16,12,
n,A100-80GB,2,2,7,
"""


@pytest.mark.parametrize("interpolation", ["loglinear", "loglog", "linear"])
def test_interpolation_exact_at_points_and_between(tmp_path: Path, interpolation: str) -> None:
    prof = load_mig_gym_csv(write_own(tmp_path / "p.csv", OWN), interpolation=interpolation)["m"]
    assert [prof.latency_s(1, b) for b in (1, 4, 16)] == [0.010, 0.020, 0.060]
    got = prof.latency_s(1, 2)
    expected = {
        "loglinear": 0.010 + 0.010 * np.log(2) / np.log(4),
        "loglog": 0.010 * 2 ** (np.log(2) / np.log(4)),
        "linear": 0.010 + 0.010 / 3,
    }[interpolation]
    assert got == pytest.approx(expected, rel=1e-12)
    curve = prof.latency_curve(1, 16)
    assert np.all(np.diff(curve[1:]) >= 0) and curve[2] == got


def test_own_csv_memory_and_models(tmp_path: Path) -> None:
    ps = load_mig_gym_csv(write_own(tmp_path / "p.csv", OWN))
    assert ps.gpu == "A100-80GB" and ps.models == ("m", "n")
    assert ps.memory_gb("m", 1) == pytest.approx(1.5, abs=0.2)
    assert ps.memory_gb("m", 16) == pytest.approx(3.5, abs=0.2)
    assert ps.memory_gb("n", 64) == 0.0
    no_mem = "model,gpu,gpcs,batch,latency_ms\nm,X,1,1,3\n"
    assert load_mig_gym_csv(write_own(tmp_path / "q.csv", no_mem)).memory_gb("m", 9) == 0.0


def test_extrapolation_is_an_error_unless_asked(tmp_path: Path) -> None:
    path = write_own(tmp_path / "p.csv", OWN)
    with pytest.raises(ProfileRangeError, match=r"m on 1g.*batch 32.*1\.\.16"):
        load_mig_gym_csv(path)["m"].latency_s(1, 32)
    prof = load_mig_gym_csv(path, extrapolate=True)["m"]
    # Line through the last two points (4, 20 ms) and (16, 60 ms), continued to batch 32.
    assert prof.latency_s(1, 32) == pytest.approx(0.060 + 16 * 0.040 / 12, rel=1e-12)
    assert prof.latency_curve(1, 32)[32] == prof.latency_s(1, 32)
    # Below the first measured batch (n starts at 2): error, or the first value held.
    with pytest.raises(ProfileRangeError):
        load_mig_gym_csv(path)["n"].latency_s(2, 1)
    assert np.isnan(load_mig_gym_csv(path)["n"].latency_curve(2, 2)[1])
    assert prof.latency_s(1, 1) == 0.010
    assert load_mig_gym_csv(path, extrapolate=True)["n"].latency_s(2, 1) == 0.007


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("model,gpu,gpcs,latency_ms\nm,X,1,3\n", r"missing column.*'batch'"),
        ("model,gpu,gpcs,batch,latency_ms\nm,X,1,two,3\n", r"line 2: column 'batch'.*'two'"),
        ("model,gpu,gpcs,batch,latency_ms\nm,X,1,1.5,3\n", r"column 'batch'.*'1.5'.*integer"),
        ("model,gpu,gpcs,batch,latency_ms\nm,X,1,1,0\n", r"column 'latency_ms'.*'0'"),
        ("model,gpu,gpcs,batch,latency_ms\nm,X,1,1,-2\n", r"column 'latency_ms'.*'-2'"),
        ("model,gpu,gpcs,batch,latency_ms\nm,X,0,1,2\n", r"column 'gpcs'.*'0'"),
        ("model,gpu,gpcs,batch,latency_ms\nm,X,1,1,2\nm,X,1,1,3\n", r"line 3: duplicate.*batch 1"),
        ("model,gpu,gpcs,batch,latency_ms\nm,X,1,1,2\nm,Y,1,2,3\n", r"one GPU type.*'X', 'Y'"),
        ("model,gpu,gpcs,batch,latency_ms,memory_gb\nm,X,1,1,2,lots\n", r"'memory_gb'.*'lots'"),
    ],
)
def test_malformed_own_csv_names_file_column_value(tmp_path: Path, text: str, match: str) -> None:
    path = write_own(tmp_path / "bad.csv", text)
    with pytest.raises(ValueError, match=match) as info:
        load_mig_gym_csv(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ([(1, 1, 1, 5, "fast")], r"line 2: column 'Latency'.*'fast'"),
        ([(1, 1, 1, 5, -0.1)], r"column 'Latency'.*non-positive"),
        ([(1, 1, 1, 5, 0.01), (1, 1, 1, 5, 0.01)], r"line 3: duplicate.*Batch size 1"),
        ([(1, 1, 1, 0, 0)], r"no measured rows"),
    ],
)
def test_malformed_parvagpu_csv(tmp_path: Path, rows: list[tuple], match: str) -> None:
    path = write_parvagpu(tmp_path / "bad.csv", rows)
    with pytest.raises(ValueError, match=match):
        load_parvagpu_csv(path, "bad", instance_mem_gb={1: 10})
    (tmp_path / "cols.csv").write_text("Mig instance,Batch size,Latency\n1,1,0.1\n")
    with pytest.raises(ValueError, match=r"cols.csv.*missing column.*Workload Number"):
        load_parvagpu_csv(tmp_path / "cols.csv", "bad")


def test_missing_files_name_the_path(tmp_path: Path) -> None:
    for load in (lambda p: load_mig_gym_csv(p), lambda p: load_parvagpu_csv(p, "m")):
        with pytest.raises(FileNotFoundError, match=r"nowhere\.csv"):
            load(tmp_path / "nowhere.csv")


def test_unknown_interpolation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cubic"):
        load_mig_gym_csv(write_own(tmp_path / "p.csv", OWN), interpolation="cubic")


# --------------------------------------------------------------------------- synthetic and merge
def test_linear_profile_is_exact() -> None:
    ps = linear_profile("toy", "A100-80GB", {1: 0.004, 7: 0.002}, {1: 0.003, 7: 0.0005}, mem_gb=2)
    prof = ps["toy"]
    assert prof.sizes == (1, 7) and prof.max_batch == 1024 and ps.memory_gb("toy", 99) == 2.0
    for g, base, per in ((1, 0.004, 0.003), (7, 0.002, 0.0005)):
        curve = prof.latency_curve(g, 1024)
        for b in (1, 2, 3, 10, 77, 1024):
            assert prof.latency_s(g, b) == base + per * b == curve[b]
    scalar = linear_profile("s", "A100-80GB", 0.01, 0.001, max_batch=8)["s"]
    assert scalar.sizes == SIZES and scalar.latency_s(4, 8) == 0.01 + 0.001 * 8
    with pytest.raises(ProfileRangeError):
        scalar.latency_s(4, 9)
    with pytest.raises(ValueError):
        linear_profile("bad", "A100-80GB", -1.0, 0.001)


def test_merge() -> None:
    a = builtin_profiles(models=["bert"])
    b = linear_profile("toy", "A100-80GB", 0.01, 0.001)
    merged = merge(a, b)
    assert merged.models == ("bert", "toy") and "toy" in merged
    assert merged.latency_s("bert", 7, 8) == a.latency_s("bert", 7, 8)
    with pytest.raises(ValueError, match="more than one"):
        merge(a, builtin_profiles(models=["bert"]))
    with pytest.raises(ValueError, match="different GPUs"):
        merge(a, linear_profile("x", "H100-80GB", 0.01, 0.001))
    with pytest.raises(ValueError):
        merge()


def test_load_fitted_yaml_matches_builtin() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ps = load_fitted_yaml(REPO / "mig_gym" / "hardware" / "data" / "profiles_a100_80gb.yaml")
    assert ps.latency_s("mobilenetv2", 2, 64) == builtin_profiles().latency_s("mobilenetv2", 2, 64)


# --------------------------------------------------------------------------- admission
@pytest.mark.parametrize(
    ("admission", "cut_1g"),
    [("measured", 32), ("memory_line", 45), ("before_oom", 63)],
)
def test_admission_rules_cut_resnet50_on_1g(admission: str, cut_1g: int) -> None:
    """resnet50 ran batch 32 on a 1g.10gb and ran out of memory at 64 (ParvaGPU data): the
    measured rule stops at 32, the memory line (0.2161 GiB/item in 9.75 GiB) at 45, the
    optimistic end of the interval at 63."""
    from mig_gym.runs.build import latency_tables, load_profiles
    from mig_gym.scenario import load_scenario

    sc = load_scenario(profiles={"admission": admission})
    spec = hardware.gpu_spec("A100-80GB")
    tables = latency_tables(sc, load_profiles(sc), spec)
    one = tables[(0, 1)]
    assert np.isfinite(one[cut_1g]) and one[cut_1g + 1] == np.inf
    assert all(np.isfinite(tables[(0, 7)][1:]))  # 7g ran every batch up to 256
    if admission == "measured":
        assert np.isfinite(tables[(0, 2)][64]) and tables[(0, 2)][65] == np.inf


def test_admission_without_run_data_is_the_memory_line() -> None:
    ps = linear_profile("toy", "A100-80GB", 0.001, 0.001, mem_gb=0.0)
    prof = ps["toy"]
    assert prof.admitted_max(1, 9.75, 200) == 200
    for admission in ("measured", "before_oom", "memory_line"):
        assert prof.with_admission(admission).admitted_max(7, 79.25, 50) == 50
    with pytest.raises(ValueError, match="unknown admission"):
        prof.with_admission("sometimes")


def test_bert_memory_is_a_documented_estimate() -> None:
    prof = builtin_profiles(models=["bert"])["bert"]
    assert prof.memory.source == "estimate"
    assert prof.memory_gb(256) <= usable_mem_gb(1)  # the data: batch 256 ran on a 1g.10gb
    assert builtin_profiles(models=["resnet50"])["resnet50"].memory.source == "fit"


@needs_parva
def test_parvagpu_table_records_what_ran_and_what_ran_out() -> None:
    prof = load_parvagpu_csv(PARVA / "resnet50.csv", model="resnet50")["resnet50"]
    assert prof.measured[1] == (32, 64) and prof.measured[7] == (256, None)
    assert prof.admitted_max(1, usable_mem_gb(1), 128) == 32


# --------------------------------------------------------------------------- families, other GPUs
MLPERF = DATA / "mlperf_inference_a100_mig" / "mlperf_a100_mig_summary.csv"
needs_mlperf = pytest.mark.skipif(not MLPERF.is_file(), reason=f"MLPerf data not found at {MLPERF}")
# MLPerf v1.1, NVIDIA DGX-A100 (A100-SXM-80GB), TensorRT/LWIS: the figures the family is fitted to.
TRT_FIGURES = [  # (model, benchmark, size, system, offline batch)
    ("resnet50", "resnet50", 1, "DGX-A100_A100-SXM-80GB-MIG_1x1g.10gb_TRT", 256),
    ("resnet50", "resnet50", 7, "DGX-A100_A100-SXM-80GBx1_TRT", 2048),
    ("bert", "bert-99", 1, "DGX-A100_A100-SXM-80GB-MIG_1x1g.10gb_TRT", 64),
    ("bert", "bert-99", 7, "DGX-A100_A100-SXM-80GBx1_TRT", 1280),
]


@needs_mlperf
@pytest.mark.parametrize(("model", "bench", "gpcs", "system", "batch"), TRT_FIGURES)
def test_tensorrt_family_matches_mlperf(model: str, bench: str, gpcs: int, system: str, batch: int):
    """Single-stream mean latency and offline throughput within 1 % of MLPerf's (as documented)."""
    with MLPERF.open() as f:
        rows = {
            r["scenario"]: r
            for r in csv.DictReader(f)
            if (r["mlperf_version"], r["system"], r["benchmark"]) == ("v1.1", system, bench)
        }
    prof = builtin_profiles(models=[model], family="tensorrt", extrapolate=True)[model]
    ss = float(rows["SingleStream"]["mean_latency_ms"])
    offline = float(rows["Offline"]["metric_value"])
    assert prof.latency_s(gpcs, 1) * 1e3 == pytest.approx(ss, rel=0.01)
    assert batch / prof.latency_s(gpcs, batch) == pytest.approx(offline, rel=0.01)


def test_tensorrt_per_item_cost_falls_with_gpcs_and_small_slices_win_less() -> None:
    trt = builtin_profiles(models=["resnet50"], family="tensorrt")["resnet50"]
    eager = builtin_profiles(models=["resnet50"])["resnet50"]
    per = [trt.curves[k].per_item_s for k in SIZES]
    assert all(a > b for a, b in itertools.pairwise(per))
    # 7 x 1g against one 7g, items/s: at large batch TensorRT favours the full GPU (MLPerf offline:
    # 0.93x), eager PyTorch the slices (at batch 32, the largest a 1g.10gb ran)
    assert 7 * trt.latency_s(7, 256) / trt.latency_s(1, 256) < 1.0
    assert 7 * eager.latency_s(7, 32) / eager.latency_s(1, 32) > 1.0


def test_parametric_knobs() -> None:
    base = builtin_profiles(models=["resnet50"])["resnet50"]
    p = builtin_profiles(
        models=["resnet50"], family="parametric", floor_scale=0.5, gpc_exponent=1.0
    )
    lp = p["resnet50"]
    for k in SIZES:
        assert lp.curves[k].floor_s == pytest.approx(0.5 * base.curves[k].floor_s)
        assert lp.curves[k].per_item_s == pytest.approx(base.curves[1].per_item_s / k)
    assert lp.measured == base.measured and "parametric" in lp.family
    with pytest.raises(ValueError, match="gpc_exponent"):
        builtin_profiles(family="parametric", gpc_exponent=0.0)


@pytest.mark.parametrize("gpu", ["A100-40GB", "H100-80GB", "A30"])
@pytest.mark.parametrize("family", ["parvagpu_eager", "tensorrt", "parametric"])
def test_every_gpu_has_derived_builtin_profiles(gpu: str, family: str) -> None:
    spec = hardware.gpu_spec(gpu)
    ps = builtin_profiles(gpu, family=family)
    a100 = builtin_profiles(family=family)
    for m in ps.models:
        lp = ps[m]
        assert lp.gpu == spec.name and lp.sizes == spec.sizes and "derived" in lp.notes()[0]
        for k in spec.sizes:  # per-item cost scales with the SMs of the slice
            scale = hardware.gpu_spec("A100-80GB").profile_for(k).sms / spec.profile_for(k).sms
            assert lp.curves[k].per_item_s == pytest.approx(a100[m].curves[k].per_item_s * scale)
            ran, oom = lp.measured[k]
            assert ran >= 0 and (oom is None or ran < oom)  # 0: not even batch 1 fits


def test_derived_cutoffs_follow_memory() -> None:
    """A100-40GB's 2g.10gb has the memory of A100-80GB's 1g.10gb: the same batches run; its
    1g.5gb has less than any measured instance: the memory line decides (0.2161 GiB per item)."""
    lp = builtin_profiles("A100-40GB", models=["resnet50"])["resnet50"]
    assert lp.measured[2] == (32, 64) and lp.measured[7] == (128, None)
    assert lp.measured[1] == (21, 64)
