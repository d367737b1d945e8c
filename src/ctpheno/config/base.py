"""Typed configuration: strict pydantic models loaded from YAML.

Every model derives from :class:`StrictModel` (frozen, ``extra="forbid"``), so
an unknown key, a wrong type or an out-of-range value fails *before any work
starts* with a :class:`~ctpheno.errors.ConfigError` that names the file, the
key path and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader with anchors/aliases refused.

    An alias re-uses a node, so a few hundred bytes of nested aliases expand to gigabytes
    (the "billion laughs" pattern); configuration files never need them.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D102 - PyYAML hook
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"YAML aliases (*{event.anchor}) are not allowed in ctpheno configuration; "
                "write the value out", event.start_mark)
        return super().compose_node(parent, index)


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` that refuses aliases (see :class:`_NoAliasLoader`)."""
    loader = _NoAliasLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


class StrictModel(BaseModel):
    """Base of every config model: immutable, unknown keys rejected, docstrings as field docs."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True,
                              validate_default=True)


def _loc(loc: tuple[Any, ...], prefix: str) -> str:
    parts = [prefix] if prefix else []
    parts += [str(p) for p in loc if not (isinstance(p, str) and p.startswith(("function-", "literal[")))]
    return ".".join(parts) or "<top level>"


def format_validation_error(err: ValidationError, *, source: str, prefix: str = "",
                            model: type[BaseModel] | None = None) -> str:
    """Turn a pydantic error into lines naming file, key path, problem and allowed values/keys."""
    lines = [f"invalid configuration in {source}:"]
    for e in err.errors():
        loc = tuple(e["loc"])
        where = _loc(loc, prefix)
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys_hint(model, loc) if model is not None else None
            hint = f"allowed keys here: {', '.join(allowed)}" if allowed else "check the spelling"
            lines.append(f"  - {where}: unknown key {str(loc[-1])!r} ({hint})")
            continue
        msg = e["msg"]
        ctx = e.get("ctx") or {}
        if "expected" in ctx and str(ctx["expected"]) not in msg:
            msg += f" (allowed: {ctx['expected']})"
        lines.append(f"  - {where}: {msg}; got {e.get('input')!r}")
    return "\n".join(lines)


def _allowed_keys_hint(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    cur: Any = model
    for part in loc[:-1]:
        if not (isinstance(cur, type) and issubclass(cur, BaseModel)) or part not in cur.model_fields:
            return None
        cur = cur.model_fields[part].annotation
    if isinstance(cur, type) and issubclass(cur, BaseModel):
        return sorted(cur.model_fields)
    return None


def validate_model(model: type[M], data: Any, *, source: str, prefix: str = "") -> M:
    """Validate ``data`` into ``model`` or raise :class:`ConfigError` with a readable message."""
    if data is None:
        data = {}
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source=source, prefix=prefix, model=model)) from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or non-mapping gives a ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"configuration file {path} does not exist")
    try:
        data = safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"configuration file {path} is not valid YAML: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"configuration file {path} must hold a mapping of keys, got {type(data).__name__}")
    return data


def load_model(model: type[M], path: str | Path, *, prefix: str = "") -> M:
    """Load one YAML file into ``model``."""
    return validate_model(model, read_yaml(path), source=str(path), prefix=prefix)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``section.key=value`` (value as YAML) into a key path and value."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, _, raw = text.partition("=")
    path = [p for p in key.strip().split(".") if p]
    if not path:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({err})") from None
    return path, value


def _set_path(data: dict[str, Any], path: list[str], value: Any, *, what: str) -> None:
    cur = data
    for p in path[:-1]:
        nxt = cur.get(p)
        if nxt is None:
            nxt = {}
            cur[p] = nxt
        if not isinstance(nxt, dict):
            raise ConfigError(f"{what}: {p!r} is not a section")
        cur = nxt
    cur[path[-1]] = value


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Return a copy of ``data`` with ``--set a.b=c`` overrides applied (validated later)."""
    import copy

    out = copy.deepcopy(data)
    for text in overrides:
        path, value = parse_override(text)
        _set_path(out, path, value, what=f"override {text!r}")
    return out


def apply_values(data: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of ``data`` with ``{"section.key": value}`` set as data (validated later).

    Unlike :func:`apply_overrides`, values are never parsed as YAML: a command-line path such as
    ``x", "/other`` or ``Z1 #note`` stays exactly that string.
    """
    import copy

    out = copy.deepcopy(data)
    for key, value in values.items():
        path = [p for p in key.split(".") if p]
        _set_path(out, path, copy.deepcopy(value), what=f"value for {key}")
    return out
