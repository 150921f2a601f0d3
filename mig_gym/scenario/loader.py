"""Loading and validating scenarios.

``load_scenario`` accepts a YAML path, a dict, or a :class:`~mig_gym.scenario.config.Scenario`,
and either
returns a fully validated frozen ``Scenario`` or raises :class:`ScenarioError` listing every problem
found, each naming the file, the dotted field path and the offending value.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from mig_gym import hardware
from mig_gym.hardware import profiles
from mig_gym.scenario import config as C

__all__ = ["ScenarioError", "load_scenario", "scenario_to_dict", "replace_in"]


class ScenarioError(ValueError):
    """A scenario is malformed. ``problems`` holds one line per problem."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s) in scenario:\n{lines}")


# --------------------------------------------------------------------------- generic conversion
class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, msg: str) -> None:
        self.items.append(f"{path or '<root>'}: {msg}")


def _type_name(tp: Any) -> str:
    if dataclasses.is_dataclass(tp):
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _convert(tp: Any, value: Any, path: str, probs: _Problems) -> Any:
    """Convert plain YAML data ``value`` to type ``tp``; record problems instead of raising."""
    if _is_union(tp):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            if len(args) < len(get_args(tp)):
                return None
            probs.add(path, "must not be empty")
            return None
        if all(dataclasses.is_dataclass(a) for a in args):
            return _convert_tagged(args, value, path, probs)
        return _convert(args[0], value, path, probs)
    origin = get_origin(tp)
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            probs.add(path, f"got {value!r}, expected one of {', '.join(map(repr, allowed))}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            probs.add(path, f"got {value!r}, expected a list")
            return ()
        inner = get_args(tp)[0]
        return tuple(_convert(inner, v, f"{path}[{i}]", probs) for i, v in enumerate(value))
    if origin is dict:
        ktp, vtp = get_args(tp)
        if not isinstance(value, dict):
            probs.add(path, f"got {value!r}, expected a mapping")
            return {}
        return {
            _convert(ktp, k, f"{path}.{k}", probs): _convert(vtp, v, f"{path}.{k}", probs)
            for k, v in value.items()
        }
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(tp, value, path, probs)
    if tp is bool:
        if not isinstance(value, bool):
            probs.add(path, f"got {value!r}, expected true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            probs.add(path, f"got {value!r}, expected an integer")
            return 0
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            probs.add(path, f"got {value!r}, expected a number")
            return 0.0
        if value != value or value in (float("inf"), float("-inf")):
            probs.add(path, f"got {value!r}, expected a finite number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            probs.add(path, f"got {value!r}, expected a string")
            return ""
        return value
    raise TypeError(f"unsupported config type {tp!r} at {path}")  # a bug in config.py


def _convert_tagged(options: list[type], value: Any, path: str, probs: _Problems) -> Any:
    kinds = {
        get_args(_hints(o)["kind"])[0]: o for o in options if len(get_args(_hints(o)["kind"])) == 1
    }
    multi = [o for o in options if len(get_args(_hints(o)["kind"])) > 1]
    for o in multi:
        for k in get_args(_hints(o)["kind"]):
            kinds[k] = o
    if not isinstance(value, dict):
        probs.add(path, f"got {value!r}, expected a mapping with 'kind'")
        return None
    kind = value.get("kind")
    if not isinstance(kind, str) or kind not in kinds:  # (a list or dict kind is unhashable)
        probs.add(f"{path}.kind", f"got {kind!r}, expected one of {', '.join(map(repr, kinds))}")
        return None
    return _convert_dataclass(kinds[kind], value, path, probs)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, vars(C))


def _convert_dataclass(cls: type, value: Any, path: str, probs: _Problems) -> Any:
    if not isinstance(value, dict):
        probs.add(path, f"got {value!r}, expected a mapping")
        return cls()
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "base_dir"}
    # keys of a nested section that may also be given flat (e.g. periodic PARIS's PARIS keys)
    flat = {
        k: (name, f)
        for name in getattr(cls, "FLAT", ())
        for k, f in ((f.name, f) for f in dataclasses.fields(hints[name]))
        if k != "kind"
    }
    kwargs: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, raw in value.items():
        sub = f"{path}.{key}" if path else str(key)
        if key in fields:
            kwargs[key] = _convert_field(hints[key], fields[key], raw, sub, probs)
        elif key in flat:
            name, f = flat[key]
            if name in value:
                probs.add(sub, f"give it either here or under {name!r}, not both")
            nested.setdefault(name, {})[key] = _convert_field(
                _hints(hints[name])[key], f, raw, sub, probs
            )
        else:
            allowed = [*fields, *flat]
            probs.add(sub, f"unknown key (allowed: {', '.join(allowed)})")
    for name, kw in nested.items():
        kwargs[name] = hints[name](**kw)
    return cls(**kwargs)


def _convert_field(tp: Any, fld: dataclasses.Field, raw: Any, sub: str, probs: _Problems) -> Any:
    """Convert one field's value and check its numeric limits (``fld.metadata``)."""
    conv = _convert(tp, raw, sub, probs)
    meta = fld.metadata
    if meta and isinstance(conv, int | float) and not isinstance(conv, bool):
        lo, hi = meta.get("min"), meta.get("max")
        if lo is not None and (conv < lo or (meta.get("lo_open") and conv == lo)):
            rel = ">" if meta.get("lo_open") else ">="
            probs.add(sub, f"got {raw!r}, must be {rel} {lo}")
        elif hi is not None and conv > hi:
            probs.add(sub, f"got {raw!r}, must be <= {hi}")
    return conv


# --------------------------------------------------------------------------- semantic checks
_MAX_BATCH = C.LognormalBatch.__dataclass_fields__["max"].metadata["max"]  # as other batch maxima


def _check(sc: C.Scenario, probs: _Problems) -> None:
    try:
        gpu = hardware.gpu_spec(sc.cluster.gpu)
    except (KeyError, ValueError) as e:
        probs.add("cluster.gpu", f"got {sc.cluster.gpu!r}: {e.args[0]}")
        gpu = None
    names = [m.name for m in sc.models]
    if not names:
        probs.add("models", "at least one model is required")
    if len(set(names)) != len(names):
        probs.add("models", f"duplicate model names in {names}")
    if names and sum(m.share for m in sc.models) <= 0:
        probs.add("models", "the shares must not all be zero")
    live = sum(m.share > 0 for m in sc.models)
    if live > sc.cluster.num_gpus:
        probs.add(
            "cluster.num_gpus",
            f"got {sc.cluster.num_gpus}, but each of the {live} models "
            "with a share > 0 needs a GPU of its own",
        )
    if sc.profiles.path is None:
        try:
            profiles.builtin_profiles(sc.cluster.gpu, names, family=sc.profiles.family)
        except (KeyError, ValueError) as e:
            probs.add("models", str(e.args[0]))
    else:
        p = Path(sc.base_dir) / sc.profiles.path
        if not p.is_file():
            probs.add("profiles.path", f"file not found: {p}")
        if sc.profiles.format == "parvagpu" and not sc.profiles.model and len(names) != 1:
            probs.add("profiles.model", "a ParvaGPU file holds one model: name it")
    wl = sc.workload
    for i, ph in enumerate(wl.phases):
        if i and ph.start_s <= wl.phases[i - 1].start_s:
            probs.add(
                f"workload.phases[{i}].start_s", f"got {ph.start_s}, phases must be in time order"
            )
        for m in ph.mix or {}:
            if m not in names:
                probs.add(f"workload.phases[{i}].mix.{m}", f"unknown model (models: {names})")
    arrivals = [wl.arrivals] + [ph.arrivals for ph in wl.phases if ph.arrivals is not None]
    for k, arr in enumerate(arrivals):
        where = "workload.arrivals" if k == 0 else "workload.phases[].arrivals"
        if isinstance(arr, C.TraceArrivals):
            if not arr.path:
                probs.add(f"{where}.path", "a trace needs a file path")
            elif not (Path(sc.base_dir) / arr.path).is_file():
                probs.add(f"{where}.path", f"file not found: {Path(sc.base_dir) / arr.path}")
    batches = [wl.batch] + [ph.batch for ph in wl.phases if ph.batch is not None]
    for b in batches:
        if isinstance(b, C.LognormalBatch) and b.min > b.max:
            probs.add("workload.batch", f"min {b.min} > max {b.max}")
        if isinstance(b, C.EmpiricalBatch):
            if (
                not b.pmf
                or any(not 1 <= k <= _MAX_BATCH for k in b.pmf)
                or any(v < 0 for v in b.pmf.values())
            ):
                probs.add(
                    "workload.batch.pmf",
                    f"got {b.pmf!r}: batch sizes 1..{_MAX_BATCH}, weights >= 0",
                )
            elif sum(b.pmf.values()) <= 0:
                probs.add("workload.batch.pmf", "weights sum to zero")
        if isinstance(b, C.TraceColumnBatch) and not isinstance(wl.arrivals, C.TraceArrivals):
            probs.add("workload.batch.kind", "trace_column needs trace arrivals")
    part = sc.policy.partitioner
    if gpu is not None:
        if isinstance(part, C.HomogeneousConfig) and part.gpcs not in gpu.sizes:
            probs.add(
                "policy.partitioner.gpcs", f"got {part.gpcs}, {gpu.name} sizes are {gpu.sizes}"
            )
        if isinstance(part, C.FixedLayoutConfig):
            if len(part.layouts) not in (1, sc.cluster.num_gpus):
                probs.add(
                    "policy.partitioner.layouts",
                    f"got {len(part.layouts)} layouts: give 1 (used on every GPU) or num_gpus"
                    f" = {sc.cluster.num_gpus}",
                )
            for i, sizes in enumerate(part.layouts):
                try:
                    hardware.layout_from_sizes(gpu.name, sizes)
                except ValueError as e:
                    probs.add(f"policy.partitioner.layouts[{i}]", str(e))
    if sc.run.warmup_queries >= sc.run.num_queries:
        probs.add("run.warmup_queries", f"got {sc.run.warmup_queries}, must be < run.num_queries")
    for i, f in enumerate(sc.faults):
        if f.gpu >= sc.cluster.num_gpus:
            probs.add(f"faults[{i}].gpu", f"got {f.gpu}, cluster has {sc.cluster.num_gpus} GPUs")
        if f.up_at_s is not None and f.up_at_s <= f.down_at_s:
            probs.add(f"faults[{i}].up_at_s", f"got {f.up_at_s}, must be > down_at_s")


# --------------------------------------------------------------------------- public API
def load_scenario(
    source: str | Path | dict | C.Scenario | None = None, **overrides: Any
) -> C.Scenario:
    """Load and validate a scenario.

    Args:
        source: a YAML file path, a dict with the YAML structure, a ``Scenario`` (re-validated), or
            None for the default scenario.
        **overrides: top-level sections replacing those of ``source`` (dicts are merged one level).

    Raises:
        ScenarioError: naming the file, every bad field and value.
        FileNotFoundError: the scenario file itself does not exist.
    """
    base_dir = "."
    label = "<dict>"
    if source is None:
        data: Any = {}
        label = "<default scenario>"
    elif isinstance(source, C.Scenario):
        data = scenario_to_dict(source)
        data.pop("base_dir")
        base_dir, label = source.base_dir, f"<scenario {source.name}>"
    elif isinstance(source, dict):
        data = dict(source)
        base_dir = str(data.pop("base_dir", "."))
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"scenario file not found: {path}")
        label, base_dir = str(path), str(path.resolve().parent)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as e:
            raise ScenarioError(label, [f"not a UTF-8 text file: {e}"]) from None
        except (yaml.YAMLError, ValueError, RecursionError) as e:  # ValueError: bad !!int, date
            raise ScenarioError(label, [f"not valid YAML: {e}"]) from None
        if data is None:
            data = {}
    if not isinstance(data, dict):
        raise ScenarioError(label, [f"<root>: expected a mapping, got {type(data).__name__}"])
    for key, val in overrides.items():
        if isinstance(val, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **val}
        else:
            data[key] = val
    if data.get("profiles") == "builtin":
        data["profiles"] = {}
    probs = _Problems()
    sc = _convert_dataclass(C.Scenario, data, "", probs)
    if not probs.items:
        sc = _reconfig_preset(sc, data, probs)
    if not probs.items:
        sc = dataclasses.replace(sc, base_dir=base_dir)
        _check(sc, probs)
    if probs.items:
        raise ScenarioError(label, probs.items)
    return sc


def _reconfig_preset(sc: C.Scenario, data: dict, probs: _Problems) -> C.Scenario:
    """``cluster.reconfig`` (a named cost) sets ``cluster.reconfig_s``; both at odds is an error."""
    if sc.cluster.reconfig is None:
        return sc
    preset = C.RECONFIG_PRESETS[sc.cluster.reconfig]
    given = data.get("cluster")
    if isinstance(given, dict) and "reconfig_s" in given and sc.cluster.reconfig_s != preset:
        probs.add(
            "cluster.reconfig_s",
            f"got {sc.cluster.reconfig_s}, but cluster.reconfig {sc.cluster.reconfig!r} "
            f"means {preset} s: give one of the two",
        )
    return dataclasses.replace(sc, cluster=dataclasses.replace(sc.cluster, reconfig_s=preset))


def scenario_to_dict(sc: C.Scenario) -> dict[str, Any]:
    """Plain-data form of a scenario (YAML-ready; ``load_scenario`` inverts it)."""

    def plain(x: Any) -> Any:
        if dataclasses.is_dataclass(x):
            return {f.name: plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
        if isinstance(x, tuple | list):
            return [plain(v) for v in x]
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        return x

    return plain(sc)


def replace_in(sc: C.Scenario, dotted: str, value: Any) -> C.Scenario:
    """Return a copy of ``sc`` with the field at ``dotted`` (e.g. ``"workload.load"``) replaced."""
    head, _, rest = dotted.partition(".")
    if not rest:
        return dataclasses.replace(sc, **{head: value})
    return dataclasses.replace(sc, **{head: replace_in(getattr(sc, head), rest, value)})
