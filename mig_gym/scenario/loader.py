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

from mig_gym.scenario import checks
from mig_gym.scenario import config as C

__all__ = ["ScenarioError", "load_scenario", "scenario_to_dict", "replace_in"]


class ScenarioError(ValueError):
    """A scenario is malformed. ``problems`` holds one line per problem (``field: message``).

    The message starts with the source (the file): ``source: field: message`` for one problem,
    else ``source: N problems in scenario:`` and one indented line per problem.
    """

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        if len(problems) == 1:
            super().__init__(f"{source}: {problems[0]}")
        else:
            lines = "\n".join(f"  - {p}" for p in problems)
            super().__init__(f"{source}: {len(problems)} problems in scenario:\n{lines}")


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
    """Convert one field's value and check its numeric limits (``fld.metadata``); a value of
    the wrong type is one problem, so its limits are not checked too."""
    before = len(probs.items)
    conv = _convert(tp, raw, sub, probs)
    if len(probs.items) > before:
        return conv
    meta = fld.metadata
    if meta and isinstance(conv, int | float) and not isinstance(conv, bool):
        lo, hi = meta.get("min"), meta.get("max")
        if lo is not None and (conv < lo or (meta.get("lo_open") and conv == lo)):
            rel = ">" if meta.get("lo_open") else ">="
            probs.add(sub, f"got {raw!r}, must be {rel} {lo}")
        elif hi is not None and conv > hi:
            probs.add(sub, f"got {raw!r}, must be <= {hi}")
    return conv


# --------------------------------------------------------------------------- YAML
class _DuplicateKeys(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems)
        self.problems = problems


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping key given twice, at any depth (plain YAML
    keeps the last value and silently drops the first).

    The check walks the composed node graph once before construction (iteratively, each node
    once, so anchors, aliases and cycles cost nothing extra); keys are compared as constructed
    values, so ``1`` and ``0x1`` or ``true`` and ``yes`` are the same key, as in the dict they
    would build. Keys merged in with ``<<`` may be overridden, as YAML intends.
    """

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        if dups := self._duplicate_keys(node):
            raise _DuplicateKeys(dups)
        return self.construct_document(node)

    def _duplicate_keys(self, root: yaml.Node) -> list[str]:
        found: list[tuple[tuple[int, int], str]] = []
        seen: set[int] = set()
        todo: list[tuple[yaml.Node, str]] = [(root, "")]
        while todo:
            node, path = todo.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, yaml.SequenceNode):
                todo += [(v, f"{path}[{i}]") for i, v in enumerate(node.value)]
            elif isinstance(node, yaml.MappingNode):
                first: dict[Any, tuple[int, int]] = {}
                for knode, vnode in node.value:
                    key = self._key(knode)
                    sub = f"{path}.{key}" if path else str(key)
                    todo.append((vnode, path if key is _MERGE else sub))
                    if key is _MERGE or key is _UNHASHABLE:
                        continue
                    at = (knode.start_mark.line + 1, knode.start_mark.column + 1)
                    if key not in first:
                        first[key] = at
                        continue
                    where = _where(at, first[key])
                    found.append((at, f"{sub}: duplicate key {key!r} on {where}"))
        return [msg for _, msg in sorted(found)]

    def _key(self, knode: yaml.Node) -> Any:
        if knode.tag == "tag:yaml.org,2002:merge":
            return _MERGE
        if not isinstance(knode, yaml.ScalarNode):
            return _UNHASHABLE  # a list or mapping key: construction refuses it
        key = self.construct_object(knode)
        try:
            hash(key)
        except TypeError:
            return _UNHASHABLE
        return key


_MERGE, _UNHASHABLE = object(), object()


def _where(at: tuple[int, int], first: tuple[int, int]) -> str:
    """``line 9 (first given on line 8)``, with columns when both are on one line."""
    if at[0] != first[0]:
        return f"line {at[0]} (first given on line {first[0]})"
    return f"line {at[0]}, column {at[1]} (first given at column {first[1]})"


def _read_yaml(path: Path, label: str) -> Any:
    """The plain data of a YAML file; ScenarioError if it is not UTF-8, not YAML, or gives a
    mapping key twice."""
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except UnicodeDecodeError as e:
        raise ScenarioError(label, [f"not a UTF-8 text file: {e}"]) from None
    except _DuplicateKeys as e:
        raise ScenarioError(label, e.problems) from None
    except (yaml.YAMLError, ValueError, RecursionError) as e:  # ValueError: bad !!int, date
        raise ScenarioError(label, [f"not valid YAML: {e}"]) from None


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
        data = _read_yaml(path, label)
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
        for path, msg in checks.scenario_problems(sc):
            probs.add(path, msg)
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
