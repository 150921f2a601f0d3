"""Tests for mig_gym.hardware: the catalogue, the placement rules and layout enumeration."""

from __future__ import annotations

import re
from collections import Counter
from importlib import resources

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from mig_gym import hardware as hw
from mig_gym.hardware import GPUSpec, InstanceProfile, Layout, Placement

BIG_GPUS = ("A100-40GB", "A100-80GB", "H100-80GB")
ALL_GPUS = (*BIG_GPUS, "A30")

# The 14 size multisets of the MIG placement rules (README.md, What is simulated), for every
# 7-GPC GPU.
BIG_MULTISETS = {
    (7,),
    (4, 3),
    (4, 2, 1),
    (4, 1, 1, 1),
    (3, 3),
    (3, 2, 2),
    (3, 2, 1, 1),
    (3, 1, 1, 1, 1),
    (3, 2, 1),
    (3, 1, 1, 1),
    (2, 2, 2, 1),
    (2, 2, 1, 1, 1),
    (2, 1, 1, 1, 1, 1),
    (1,) * 7,
}
A30_MULTISETS = {(4,), (2, 2), (2, 1, 1), (1, 1, 1, 1)}


def _profile(gpu: str, name: str) -> InstanceProfile:
    return next(p for p in hw.gpu_spec(gpu).profiles if p.name == name)


def _layout(gpu: str, *placed: tuple[str, int]) -> Layout:
    return Layout(gpu, tuple(Placement(_profile(gpu, name), start) for name, start in placed))


# --------------------------------------------------------------------------- catalogue
def test_catalogue_is_package_data():
    text = (
        resources.files("mig_gym.hardware.data").joinpath("gpus.yaml").read_text(encoding="utf-8")
    )
    assert hw.gpu_names() == tuple(yaml.safe_load(text)["gpus"])
    assert set(hw.gpu_names()) == set(ALL_GPUS)


@pytest.mark.parametrize(
    ("gpu", "name", "profile_id", "gpcs", "mem_slices", "max_count", "starts", "sms"),
    [
        ("A100-40GB", "1g.5gb", 19, 1, 1, 7, (0, 1, 2, 3, 4, 5, 6), 14),
        ("A100-40GB", "2g.10gb", 14, 2, 2, 3, (0, 2, 4), 28),
        ("A100-40GB", "3g.20gb", 9, 3, 4, 2, (0, 4), 42),
        ("A100-40GB", "4g.20gb", 5, 4, 4, 1, (0,), 56),
        ("A100-40GB", "7g.40gb", 0, 7, 8, 1, (0,), 98),
        ("A100-80GB", "1g.20gb", 15, 1, 2, 4, (0, 2, 4, 6), 14),
        ("H100-80GB", "3g.40gb", 9, 3, 4, 2, (0, 4), 60),
        ("H100-80GB", "7g.80gb", 0, 7, 8, 1, (0,), 132),
        ("A30", "1g.6gb", 14, 1, 1, 4, (0, 1, 2, 3), 14),
        ("A30", "2g.12gb", 5, 2, 2, 2, (0, 2), 28),
        ("A30", "4g.24gb", 0, 4, 4, 1, (0,), 56),
    ],
)
def test_profile_facts(gpu, name, profile_id, gpcs, mem_slices, max_count, starts, sms):
    p = _profile(gpu, name)
    assert (p.profile_id, p.gpcs, p.mem_slices, p.max_count, p.starts, p.sms) == (
        profile_id,
        gpcs,
        mem_slices,
        max_count,
        starts,
        sms,
    )
    assert 0 < p.mem_gb < hw.gpu_spec(gpu).mem_gb


@pytest.mark.parametrize(
    ("gpu", "extra"),
    [
        ("A100-40GB", {"1g.5gb+me"}),
        ("A100-80GB", {"1g.20gb", "1g.10gb+me"}),
        ("H100-80GB", {"1g.20gb", "1g.10gb+me"}),
        ("A30", set()),
    ],
)
def test_extra_profiles_are_flagged(gpu, extra):
    spec = hw.gpu_spec(gpu)
    assert {p.name for p in spec.profiles if not p.in_layouts} == extra
    assert spec.reconfig_s == 3.0


@pytest.mark.parametrize(
    ("gpu", "sizes"), [(g, (1, 2, 3, 4, 7)) for g in BIG_GPUS] + [("A30", (1, 2, 4))]
)
def test_sizes_and_profile_for(gpu, sizes):
    spec = hw.gpu_spec(gpu)
    assert spec.sizes == sizes
    assert all(spec.profile_for(k).gpcs == k and spec.profile_for(k).in_layouts for k in sizes)
    with pytest.raises(ValueError, match=r"no 5g partition.*valid sizes are \(1, 2"):
        spec.profile_for(5)


@pytest.mark.parametrize("alias", ["A100-80GB", "a100-80gb", "A100_80GB", "a100 80gb"])
def test_gpu_spec_ignores_case_and_separators(alias):
    assert hw.gpu_spec(alias).name == "A100-80GB"


@pytest.mark.parametrize("exc", [KeyError, ValueError])
def test_gpu_spec_unknown_lists_known_names(exc):
    with pytest.raises(exc, match="unknown GPU 'V100'; known GPUs: A100-40GB, A100-80GB") as info:
        hw.gpu_spec("V100")
    assert all(name in str(info.value) for name in ALL_GPUS)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda g: g["A30"].update(colour="red"), r"gpus\.A30: unknown key\(s\) \['colour'\]"),
        (lambda g: g["A30"]["profiles"][0].update(gpc=1), r"profiles\[0\]: unknown .*'gpc'"),
        (lambda g: g["A30"].pop("sms"), r"gpus\.A30: .*sms"),
        (lambda g: g["A30"]["profiles"][0].update(starts=[3, 4]), "1g.6gb does not fit"),
    ],
)
def test_load_catalogue_names_bad_entries(tmp_path, edit, match):
    data = yaml.safe_load(
        resources.files("mig_gym.hardware.data").joinpath("gpus.yaml").read_text()
    )
    edit(data["gpus"])
    path = tmp_path / "gpus.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=match) as info:
        hw.load_catalogue(path)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------- enumeration
@pytest.mark.parametrize(
    ("gpu", "n_layouts", "multisets"),
    [(g, 19, BIG_MULTISETS) for g in BIG_GPUS] + [("A30", 5, A30_MULTISETS)],
)
def test_layout_and_multiset_counts(gpu, n_layouts, multisets):
    assert len(hw.valid_layouts(gpu)) == n_layouts
    found = hw.size_multisets(gpu)
    assert len(found) == len(multisets) and set(found) == multisets


@pytest.mark.parametrize("gpu", ALL_GPUS)
@pytest.mark.parametrize("include_extra", [False, True])
def test_enumerated_layouts_are_legal_maximal_unique_and_ordered(gpu, include_extra):
    layouts = hw.valid_layouts(gpu, include_extra=include_extra)
    assert len(set(layouts)) == len(layouts)
    assert all(hw.is_legal(x) and hw.is_maximal(x, include_extra=include_extra) for x in layouts)
    assert all(x.gpu == gpu for x in layouts)
    sizes = [x.sizes for x in layouts]
    assert sizes == sorted(sizes, reverse=True)
    assert hw.valid_layouts(gpu, include_extra) == hw.valid_layouts(gpu.lower(), include_extra)


def test_valid_layouts_returns_a_fresh_list():
    hw.valid_layouts("A30").clear()
    assert len(hw.valid_layouts("A30")) == 5


@pytest.mark.parametrize(("gpu", "n_main"), [("A100-80GB", 19), ("H100-80GB", 19)])
def test_include_extra_adds_double_memory_layouts(gpu, n_main):
    extra = hw.valid_layouts(gpu, include_extra=True)
    assert len(extra) > n_main
    assert any(p.profile.name == "1g.20gb" for x in extra for p in x.placements)
    # Every main layout already uses all GPCs or all reachable memory, so it stays maximal.
    assert set(hw.valid_layouts(gpu)) <= set(extra)
    assert all(hw.is_maximal(x, include_extra=True) for x in hw.valid_layouts(gpu))


def test_a30_has_no_extra_layouts():
    assert hw.valid_layouts("A30", include_extra=True) == hw.valid_layouts("A30")


# --------------------------------------------------------------------------- layouts from sizes
@pytest.mark.parametrize("gpu", ALL_GPUS)
def test_layout_from_sizes_round_trips_every_multiset(gpu):
    for sizes in hw.size_multisets(gpu):
        layout = hw.layout_from_sizes(gpu, list(reversed(sizes)))
        assert layout.sizes == sizes and hw.is_maximal(layout)


@pytest.mark.parametrize(
    ("gpu", "sizes"),
    [("A100-40GB", (4,)), ("A100-80GB", (3, 3)), ("H100-80GB", (2, 1)), ("A30", (2,)), ("A30", ())],
)
def test_layout_from_sizes_accepts_non_maximal(gpu, sizes):
    layout = hw.layout_from_sizes(gpu, sizes)
    assert hw.is_legal(layout) and layout.sizes == sizes


@pytest.mark.parametrize(
    ("gpu", "sizes"),
    [
        ("A100-40GB", (4, 4)),  # a single 4g start (slice 0)
        ("A100-80GB", (7, 1)),  # 7g takes every memory slice
        # 3g may start only at 0 or 4 and spans 4 slices, so two of them leave no room for a 1g.
        ("H100-80GB", (3, 3, 1)),
        ("A100-40GB", (2, 2, 2, 2)),
        ("A100-40GB", (1,) * 8),
        ("A30", (4, 1)),
        ("A30", (2, 2, 1)),
    ],
)
def test_layout_from_sizes_rejects_impossible(gpu, sizes):
    expected = re.escape(f"sizes {tuple(sorted(sizes, reverse=True))}") + f".*one {gpu}"
    with pytest.raises(ValueError, match=expected):
        hw.layout_from_sizes(gpu, sizes)


def test_layout_from_sizes_rejects_unknown_size():
    with pytest.raises(ValueError, match=r"no 3g partition; valid sizes are \(1, 2, 4\)"):
        hw.layout_from_sizes("A30", (3, 1))


# --------------------------------------------------------------------------- rendering
@pytest.mark.parametrize(
    ("gpu", "sizes", "index", "command"),
    [
        ("A100-80GB", (1, 2, 1, 3), 0, "nvidia-smi mig -i 0 -cgi 9,14,19,19 -C"),
        ("A100-40GB", (4, 2, 1), 3, "nvidia-smi mig -i 3 -cgi 5,14,19 -C"),
        ("H100-80GB", (7,), 1, "nvidia-smi mig -i 1 -cgi 0 -C"),
        ("A30", (1, 2, 1), 0, "nvidia-smi mig -i 0 -cgi 5,14,14 -C"),
    ],
)
def test_nvidia_smi_commands(gpu, sizes, index, command):
    assert hw.layout_from_sizes(gpu, sizes).nvidia_smi_commands(index) == [command]


def test_empty_layout_needs_no_commands():
    assert Layout("A30", ()).nvidia_smi_commands() == []


def test_layout_properties_and_str():
    layout = _layout("A100-80GB", ("1g.10gb", 6), ("4g.40gb", 0), ("1g.20gb", 4))
    assert [p.start for p in layout.placements] == [0, 4, 6]
    assert layout == _layout("A100-80GB", ("4g.40gb", 0), ("1g.20gb", 4), ("1g.10gb", 6))
    assert layout.sizes == (4, 1, 1) and layout.gpcs_used == 6
    assert str(layout) == "4g+1g.20gb+1g"
    assert layout.placements[1].mem_range == range(4, 6) and layout.placements[1].mem_gb == 19.62


# --------------------------------------------------------------------------- rules
@pytest.mark.parametrize(
    ("layout", "match"),
    [
        (_layout("A100-40GB", ("2g.10gb", 1)), r"2g.10gb cannot start at memory slice 1"),
        (_layout("A100-40GB", ("3g.20gb", 0), ("1g.5gb", 3)), r"overlaps .* on memory slice 3"),
        (_layout("A100-40GB", ("1g.5gb+me", 0), ("1g.5gb+me", 1)), r"2 x 1g.5gb\+me exceeds .* 1"),
        (
            Layout("A30", (Placement(_profile("A100-40GB", "1g.5gb"), 0),)),
            r"1g.5gb \(id 19\) is not an A30 profile",
        ),
    ],
)
def test_check_layout_explains_first_violation(layout, match):
    assert not hw.is_legal(layout)
    with pytest.raises(ValueError, match=match):
        hw.check_layout(layout)


def test_gpc_limit_is_enforced():
    # The real catalogues' starts never let the GPC total bind, so use a made-up GPU where it does.
    tiny = InstanceProfile("1g", 1, 1, 1, mem_gb=1.0, max_count=4, starts=(0, 1, 2, 3), sms=1)
    spec = GPUSpec("tiny", 2, 4, mem_gb=4.0, sms=2, reconfig_s=1.0, profiles=(tiny,))
    placed = tuple(Placement(tiny, s) for s in range(3))
    assert "use 3 GPCs but a tiny has 2" in hw.layouts._first_violation(spec, placed)
    assert hw.layouts._first_violation(spec, placed[:2]) is None


def test_check_layout_passes_legal_and_is_maximal_rejects_partial():
    layout = hw.layout_from_sizes("A100-40GB", (3, 2))
    assert hw.check_layout(layout) is None
    assert hw.is_legal(layout) and not hw.is_maximal(layout)


def _rules_oracle(spec: GPUSpec, placements: list[Placement]) -> bool:
    """The rules restated independently: pairwise disjoint ranges, starts, counts, GPC total."""
    ranges = [set(range(p.start, p.start + p.profile.mem_slices)) for p in placements]
    disjoint = all(not (a & b) for i, a in enumerate(ranges) for b in ranges[i + 1 :])
    counts = Counter(p.profile.name for p in placements)
    return (
        disjoint
        and all(p.start in p.profile.starts for p in placements)
        and all(counts[p.profile.name] <= p.profile.max_count for p in placements)
        and sum(p.profile.gpcs for p in placements) <= spec.gpcs
    )


@st.composite
def _placement_sets(draw):
    spec = hw.gpu_spec(draw(st.sampled_from(ALL_GPUS)))
    placement = st.sampled_from(spec.profiles).flatmap(
        lambda p: st.builds(
            Placement,
            st.just(p),
            st.one_of(st.sampled_from(p.starts), st.integers(0, spec.mem_slices - 1)),
        )
    )
    return spec, draw(st.lists(placement, max_size=8))


def _extends_to_enumerated(spec: GPUSpec, placements: list[Placement]) -> bool:
    extra = any(not p.profile.in_layouts for p in placements)
    mine = set(placements)
    return any(mine <= set(m.placements) for m in hw.valid_layouts(spec.name, extra))


@settings(max_examples=300, deadline=None)
@given(_placement_sets())
def test_legality_matches_rules_and_legal_sets_extend_to_maximal(case):
    spec, placements = case
    legal = hw.is_legal(Layout(spec.name, tuple(placements)))
    assert legal == _rules_oracle(spec, placements)
    assert not legal or _extends_to_enumerated(spec, placements)


@settings(max_examples=300, deadline=None)
@given(_placement_sets())
def test_every_greedily_grown_legal_set_extends_to_maximal(case):
    # Random sets are mostly illegal; keeping only the candidates the oracle accepts gives many
    # legal sets (with and without extra profiles) to check the extension property on.
    spec, candidates = case
    grown: list[Placement] = []
    for p in candidates:
        if _rules_oracle(spec, [*grown, p]):
            grown.append(p)
    assert hw.is_legal(Layout(spec.name, tuple(grown)))
    assert _extends_to_enumerated(spec, grown)


@pytest.mark.parametrize("gpu", ["A100-40GB", "A100-80GB", "H100-80GB", "A30"])
def test_a_scenario_runs_on_every_catalogued_gpu_with_builtin_profiles(gpu):
    """Built-in (on other GPUs: derived) profiles make every catalogued GPU usable."""
    import mig_gym

    sc = {
        "cluster": {"gpu": gpu, "num_gpus": 2},
        "models": [{"name": "resnet50", "slo_ms": 100}],
        "workload": {"arrivals": {"kind": "poisson", "rate_qps": 200}},
        "run": {"num_queries": 2000, "warmup_queries": 100},
    }
    s = mig_gym.simulate(sc, "paris+elsa", seed=0)
    assert s.conserved and s.completed > 1000


@pytest.mark.parametrize(
    ("preset", "seconds"), [("driver", 1.0), ("reload", 5.0), ("orchestrated", 120.0)]
)
def test_reconfiguration_presets_set_reconfig_s(preset, seconds):
    from mig_gym import load_scenario
    from mig_gym.scenario import ScenarioError

    assert load_scenario(cluster={"reconfig": preset}).cluster.reconfig_s == seconds
    assert load_scenario(cluster={"reconfig_s": 7.5}).cluster.reconfig_s == 7.5  # still works
    again = load_scenario(load_scenario(cluster={"reconfig": preset}))
    assert again.cluster.reconfig_s == seconds
    with pytest.raises(ScenarioError, match=r"cluster.reconfig_s.*give one"):
        load_scenario(cluster={"reconfig": preset, "reconfig_s": seconds + 1})
    with pytest.raises(ScenarioError, match=r"cluster\.reconfig"):
        load_scenario(cluster={"reconfig": "instant"})
