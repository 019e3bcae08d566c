"""Typed, validated configuration.

A job config is one YAML file with a section per stage (``pool:``, ``score:``, ...). Each
section is a dataclass owned by its stage package; this module turns plain YAML data into
those dataclasses and checks it before any work starts:

* an unknown key, a wrong type or an impossible value is a :class:`ConfigError` whose
  message names the file and the dotted key (``jobs/x.yaml: score.batch_size: ...``);
* ``--set key=value`` overrides are applied to the YAML data before validation, so they
  are checked the same way.

Stage configs declare field types with ordinary annotations and raise
:class:`ConfigValueError` (field name, message) from ``__post_init__`` for value checks.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml


class ConfigError(ValueError):
    """A configuration problem, with the file and the dotted key in its message."""


class ConfigValueError(ValueError):
    """Raised by a config dataclass's ``__post_init__``: ``field`` is the offending key."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def check(condition: bool, field: str, message: str) -> None:
    """Raise ConfigValueError(field, message) unless ``condition`` holds."""
    if not condition:
        raise ConfigValueError(field, message)


MAX_SEED = 2**32 - 1  # numpy's legacy seeds and most tools take 0 .. 2**32 - 1


def check_seed(value: int, field: str) -> None:
    """A seed must be an integer in 0 .. 2**32 - 1 (numpy refuses negative seeds)."""
    check(0 <= value <= MAX_SEED, field, f"must be an integer from 0 to {MAX_SEED}, got {value}")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(tp))
        return f"{getattr(origin, '__name__', origin)}[{args}]"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _convert(tp: Any, value: Any, where: str) -> Any:
    """Convert YAML ``value`` to type ``tp`` or raise ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{where}: must not be null (expected {_type_name(tp)})")
        real = [a for a in args if a is not type(None)]
        if len(real) == 1 and dataclasses.is_dataclass(real[0]):  # a section or null: its own error names the inner key
            return _convert(real[0], value, where)
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        return build(tp, value if value is not None else {}, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)[:1] or (Any,)
        out = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return out if origin is list else tuple(out)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        _, vt = typing.get_args(tp) or (str, Any)
        return {str(k): _convert(vt, v, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML reads "5e-4" as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise ConfigError(f"{where}: expected a path, got {value!r}")
    raise TypeError(f"unsupported config type {tp!r} at {where}")


def build(cls: type, data: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a mapping; ``where`` prefixes every error message."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{_join(where, unknown[0])}: unknown key (valid keys: {', '.join(sorted(fields))})"
        )
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(hints[name], value, _join(where, name))
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{_join(where, missing[0])}: required key is missing")
    try:
        return cls(**kwargs)
    except ConfigValueError as e:
        raise ConfigError(f"{_join(where, e.field)}: {e.message}") from None


def _join(where: str, key: str) -> str:
    if ": " in where:
        return f"{where}.{key}"
    return f"{where}: {key}"


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=value``; the value is read as YAML (numbers, lists, null...)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value, for example score.batch_size=8")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {text!r}: empty key")
    if not raw.strip():
        return key.split("."), ""
    try:
        value = yaml.load(raw, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"--set {key}: the value {raw!r} is not valid YAML ({problem})") from None
    except ConfigError as e:
        raise ConfigError(f"--set {key}: {e}") from None
    return key.split("."), value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    for text in overrides or []:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: {part!r} is not a mapping")
            node = child
        node[path[-1]] = value
    return data


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (YAML would keep the
    last one silently): a ConfigError naming the key and both lines."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # "<<: *anchor" merges are allowed to override
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    if key in first:
                        raise ConfigError(
                            f"duplicate key {key!r} at lines {first[key]} and {line} "
                            "(YAML would silently keep the last; merge them into one)"
                        )
                    first[key] = line
                except TypeError:  # an unhashable key: SafeLoader reports it
                    break
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> dict:
    from labelwise import textio

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a job file (give the YAML file, e.g. jobs/quickstart.yaml)")
    try:
        text = textio.decode(path.read_bytes(), str(path))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the job file ({e.strerror or e})") from None
    except ValueError as e:
        raise ConfigError(str(e)) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{line} invalid YAML: {getattr(e, 'problem', e)}") from None
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    if data is None:
        raise ConfigError(
            f"{path}: the job file is empty; write at least run_dir (see jobs/quickstart.yaml; "
            "`labelwise config` without a file prints every default)"
        )
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return data


def load(cls: type, path: str | Path | None, overrides: list[str] | None = None) -> Any:
    """Read YAML ``path`` (or nothing), apply ``--set`` overrides and build ``cls``."""
    data = read_yaml(path) if path is not None else {}
    data = apply_overrides(data, overrides or [])
    return build(cls, data, str(path) if path is not None else "<config>")


def to_dict(obj: Any) -> Any:
    """Plain-data view of a config (for recording it beside results)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj
