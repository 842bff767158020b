"""Settings at the edges: TOML/dicts <-> the frozen dataclasses of clipaction.config.

Unknown keys fail with the list of valid keys and wrong types with the expected type, so a typo
in a study file is one clear line, not a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import tomli_w

from clipaction.config import StudyConfig
from clipaction.errors import (  # ConfigError: a settings file that is not a valid configuration
    ClipactionError,
    ConfigError,
)

T = TypeVar("T")


def from_dict(cls: type[T], data: Any, where: str = "") -> T:
    """Build dataclass `cls` from a (nested) dict, checking keys and types."""
    if dataclasses.is_dataclass(data):
        return data  # type: ignore[return-value]
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a table of settings, got {type(data).__name__}")
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown key {unknown[0]!r}; valid keys: {', '.join(names)}")
    values = {name: _convert(hints[name], data[name], f"{where}.{name}".lstrip(".")) for name in data}
    try:
        return cls(**values)
    except ClipactionError as error:
        if error.setting is None:
            raise ConfigError(f"{where or 'config'}: {error}") from None
        # the dataclass names its own field; the file's path to it is `where`
        field_name = error.setting.rsplit(".", 1)[-1]
        raise ConfigError(error.message, setting=f"{where}.{field_name}" if where else error.setting) from None
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where or 'config'}: {error}") from None


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _convert(option, value, where)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(f"{where}: expected {_describe(hint)}, got {value!r}")
    if origin is Literal:
        if value not in get_args(hint):
            raise ConfigError(f"must be one of {', '.join(map(str, get_args(hint)))}; got {value!r}", setting=where)
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = get_args(hint)[0]
        return tuple(_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint in (int, str, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
        return value
    return value


def _describe(hint: Any) -> str:
    if get_origin(hint) in (Union, types.UnionType):
        return " or ".join(_describe(option) for option in get_args(hint))
    if get_origin(hint) is Literal:
        return " or ".join(repr(v) for v in get_args(hint))
    return "nothing" if hint is type(None) else getattr(hint, "__name__", str(hint))


def to_dict(config: Any) -> dict[str, Any]:
    """A dataclass as plain dicts/lists (tuples become lists)."""
    return typing.cast(dict, _plain(dataclasses.asdict(config)))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def toml_text(data: dict[str, Any]) -> str:
    """TOML text of a plain dict. TOML has no null: a None value is written as a comment,
    `# key = ...  (not set)`, under its table, so the file still shows every setting."""
    lines = tomli_w.dumps(_without_none(data)).splitlines()
    unset = _unset_keys(data)
    out = [_unset_line(key) for key in unset.pop((), [])]
    for line in lines:
        out.append(line)
        if line.startswith("[") and not line.startswith("[["):
            out.extend(_unset_line(key) for key in unset.pop(tuple(line.strip("[]").split(".")), []))
    return "\n".join(out) + "\n"


def _unset_line(key: str) -> str:
    return f"# {key} = ...  (not set)"


def _unset_keys(data: dict[str, Any], table: tuple[str, ...] = ()) -> dict[tuple[str, ...], list[str]]:
    """{table path: keys whose value is None} over `data`'s nested tables (not arrays of tables)."""
    found: dict[tuple[str, ...], list[str]] = {}
    for key, value in data.items():
        if value is None:
            found.setdefault(table, []).append(key)
        elif isinstance(value, dict):
            found.update(_unset_keys(value, (*table, key)))
    return found


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def _every_class_as_all(value: Any) -> Any:
    """`num_classes = None` (every class) -> "all", at any depth: TOML has no null."""
    if isinstance(value, dict):
        return {
            key: "all" if key == "num_classes" and item is None else _every_class_as_all(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_every_class_as_all(item) for item in value]
    return value


def config_to_toml(config: Any) -> str:
    """TOML text that reads back to the config dataclass `config`. Unset optional values (None)
    are left out, since TOML has no null; "every class" is written as num_classes = "all"."""
    return toml_text(_every_class_as_all(to_dict(config)))


def config_from_toml(cls: type[T], text: str, where: str = "config") -> T:
    """Parse TOML text into the dataclass `cls`; a ConfigError (a ValueError) names the problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{where}: not valid TOML: {error}") from None
    try:
        return from_dict(cls, data)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


def load_config(cls: type[T], path: str | Path) -> T:
    """Read a TOML file into the dataclass `cls`; a missing file, text that is not UTF-8 or bad
    TOML is a ConfigError naming the file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text: {error}") from None
    return config_from_toml(cls, text, str(path))


def study_config_to_toml(config: StudyConfig) -> str:
    """TOML text of a study config (see `config_to_toml`)."""
    return config_to_toml(config)


def load_study_config(path: str | Path) -> StudyConfig:
    """Read a study TOML file (see `load_config`)."""
    return load_config(StudyConfig, path)


def merge(config: T, overrides: dict[str, Any]) -> T:
    """A copy of `config` with dotted-path overrides applied, e.g. {"dataset.root": "/data"}."""
    data = to_dict(config)
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    return from_dict(type(config), data)
