"""``--set`` overrides and one-line errors: what a user typed, checked against the scenario's models.

:func:`parse_override` reads ``"key.path=value"``; :func:`apply_override` checks the key path against the
models before setting it; :func:`translate` turns the first problem of a pydantic error into one
:class:`~dcsim.errors.DcsimInputError` line naming the file, the key path, the bad value and what is allowed.
Both walk the models' type annotations (``Annotated``, ``X | None``, tagged unions such as the arrival
kinds of ``[workload]``), which is what the helpers at the end do. Nothing here knows the sections: the
root model is passed in. Every section derives from :class:`Strict`, whose refusals these messages explain.
"""
from __future__ import annotations

import json
import re
import tomllib
import types
import typing
from collections.abc import Sequence
from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Tag, ValidationError

from dcsim.errors import DcsimInputError

__all__ = ["Strict", "parse_override", "apply_override", "translate", "toml_error", "NOTHING", "shown", "dotted",
           "key"]


class Strict(BaseModel):
    """A section's model: TOML types as written, unknown keys refused, no NaN or infinity."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class _Nothing:
    def __repr__(self) -> str:
        return "nothing"


NOTHING = _Nothing()
"""The value shown for a missing key (``got nothing``)."""

_PROBLEMS = {"missing": "missing key", "extra_forbidden": "unknown key", "literal_error": "not one of the choices",
             "greater_than": "out of range", "greater_than_equal": "out of range", "less_than": "out of range",
             "less_than_equal": "out of range", "finite_number": "not a finite number",
             "too_short": "too few entries", "string_too_short": "empty"}


# ---------------------------------------------------------------------------------------------- --set

def parse_override(text: str) -> tuple[list[str], Any]:
    """``"workload.rate_per_s=3"`` → ``(["workload", "rate_per_s"], 3)``.

    The value is read as a TOML value when it is one (numbers, booleans, quoted strings, arrays,
    inline tables), else taken as a bare string (``workload.arrival=poisson``). Key segments
    follow TOML dotted keys: quote names with ``/``, e.g. ``site.limits_w."row0/rack1"=30e3``.
    """
    allowed = "key.path=value, e.g. workload.rate_per_s=3 or site.limits_w.\"row0/rack1\"=30000"
    if not isinstance(text, str) or "=" not in text:
        raise DcsimInputError("--set", text, allowed, problem="no '='")
    key_text, raw = (s.strip() for s in text.split("=", 1))
    try:
        keys = _key_path(tomllib.loads(f"{key_text} = 0"))
    except tomllib.TOMLDecodeError:
        raise DcsimInputError("--set", text, allowed, problem="malformed key path") from None
    for doc in (f"{key_text} = {raw}", f"{key_text} = {json.dumps(raw)}"):
        try:
            parsed = tomllib.loads(doc)
            break
        except tomllib.TOMLDecodeError:
            continue
    else:  # pragma: no cover - a JSON string is always a TOML string
        raise DcsimInputError("--set", text, allowed, problem="unreadable value")
    value: Any = parsed
    for k in keys:
        value = value[k]
    return keys, value


def _key_path(d: dict) -> list[str]:
    keys = []
    while isinstance(d, dict):
        (k, d), = d.items()
        keys.append(k)
    return keys


def apply_override(raw: dict, keys: list[str], value: Any, root: type[BaseModel]) -> None:
    """Set ``raw[k0][k1]...`` to ``value`` after checking the path against ``root``'s models.

    At a tagged union (the arrival kinds) a key of any member is accepted: the value decides the member.
    """
    ann: Any = root
    for depth, k in enumerate(keys):
        models = _models_in(ann)
        if not models:
            if _free_table(ann):  # a table of free keys (limits_w, params, tokens)
                ann = Any
                continue
            shown_at = ".".join(key(x) for x in keys[:depth])
            raise DcsimInputError(f"--set {dotted(keys)}", value, f"a key path ending at {shown_at}",
                                  problem=f"{shown_at} takes a value, not a table")
        hit = next((m for m in models if k in m.model_fields), None)
        if hit is None:
            raise DcsimInputError(f"--set {dotted(keys)}", value, _keys_allowed(ann, keys[:depth]),
                                  problem="unknown key")
        ann = hit.model_fields[k].annotation
    node = raw
    for k in keys[:-1]:
        if not isinstance(node.get(k), dict):
            node[k] = {}
        node = node[k]
    node[keys[-1]] = value


# --------------------------------------------------------------------------------------------- errors

def translate(err: ValidationError, source: str, root: type[BaseModel]) -> DcsimInputError:
    """The first problem of a pydantic error as one line: file, key path, value, what is allowed."""
    errors = err.errors(include_url=False)
    e = errors[0]
    more = f" (first of {len(errors)} problems)" if len(errors) > 1 else ""
    inner = (e.get("ctx") or {}).get("error")
    if isinstance(inner, DcsimInputError):
        problem = (inner.problem or "bad value") + more if more else inner.problem
        return DcsimInputError(f"{source}: {inner.where}", inner.value, inner.allowed, problem)
    loc, field, scope, model = _walk(e["loc"], root)
    kind = e["type"]
    if kind == "extra_forbidden":
        allowed = _keys_allowed(scope, loc[:-1])
        return DcsimInputError(f"{source}: {dotted(loc)}", shown(e["input"]), allowed, "unknown key" + more)
    value: Any = NOTHING if kind == "missing" else shown(e["input"])
    problem = _PROBLEMS.get(kind) or ("wrong type" if kind.endswith("_type")
                                      else e["msg"].removeprefix("Value error, "))
    needed_by = getattr(model, "needed_by", None)
    if kind == "missing" and isinstance(needed_by, str):
        problem += f" ({needed_by} needs it)"
    allowed = field.description if field is not None and field.description else e["msg"]
    return DcsimInputError(f"{source}: {dotted(loc)}", value, allowed, problem + more)


def toml_error(where: str, text: str, e: tomllib.TOMLDecodeError) -> DcsimInputError:
    """A TOML syntax error as one line: file, line, column, the line as written."""
    msg = str(e)
    m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
    reason = re.sub(r"\s*\(at .*\)$", "", msg)
    if m is None:
        return DcsimInputError(where, "end of file", "valid TOML (https://toml.io)",
                               problem=f"malformed TOML: {reason}")
    line, col = int(m.group(1)), int(m.group(2))
    lines = text.splitlines()
    at = lines[line - 1].strip() if 0 < line <= len(lines) else ""
    return DcsimInputError(f"{where}, line {line}, column {col}", at, "valid TOML (https://toml.io)",
                           problem=f"malformed TOML: {reason}")


def shown(value: Any) -> Any:
    """A value as an error shows it: models as their data, long values cut at 120 characters."""
    if isinstance(value, BaseModel):
        value = value.model_dump(exclude_none=True)
    text = repr(value)
    return value if len(text) <= 120 else text[:117] + "..."


def dotted(loc: Sequence[Any]) -> str:
    """A key path as TOML writes it: ``facility.mix[1].config``, ``site.limits_w."row0/rack1"``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (("." if out else "") + key(str(part)))
    return out


def key(name: str) -> str:
    """A TOML key as written: bare when it can be, else quoted (``"row0/rack1"``)."""
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


# -------------------------------------------------------------------------------- type introspection

def _walk(loc: tuple, root: type[BaseModel]) -> tuple[tuple, Any, Any, type[BaseModel] | None]:
    """An error location without pydantic's union tags, the FieldInfo there (the list or table field for
    its items), the scope of its last key (a model, or a tagged union of models) and the model holding it."""
    out: list[Any] = []
    ann: Any = root
    field, scope, model, union = None, None, None, None
    for part in loc:
        u = _unwrap(ann)
        if _is_union(u):
            member = _tagged(u, part)
            if member is not None:  # the tag of the member the value was read as: not a key
                ann, union = member, u
                continue
            union, u = u, _unwrap(_first_model_member(u))
        out.append(part)
        m = _model_of(u)
        if m is not None and isinstance(part, str):
            model, scope = m, (union if union is not None else m)
            field = m.model_fields.get(part)
            ann = field.annotation if field is not None else Any
        else:
            ann = _step(u, part)
        union = None
    return tuple(out), field, scope, model


def _step(ann: Any, part: Any) -> Any:
    origin = typing.get_origin(ann)
    if origin is list and isinstance(part, int):
        return typing.get_args(ann)[0]
    if origin is dict:
        return typing.get_args(ann)[1]
    m = _model_of(ann)
    if m is not None and isinstance(part, str) and part in m.model_fields:
        return m.model_fields[part].annotation
    return Any


def _unwrap(ann: Any) -> Any:
    """Strip ``Annotated`` and ``X | None``."""
    while True:
        if typing.get_origin(ann) is Annotated:
            ann = typing.get_args(ann)[0]
            continue
        if _is_union(ann, any_size=True):
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            if len(args) == 1:
                ann = args[0]
                continue
        return ann


def _is_union(ann: Any, any_size: bool = False) -> bool:
    if typing.get_origin(ann) not in (Union, types.UnionType):
        return False
    return any_size or len([a for a in typing.get_args(ann) if a is not type(None)]) > 1


def _members(ann: Any) -> list[Any]:
    return [a for a in typing.get_args(ann) if a is not type(None)]


def _tagged(union: Any, tag: Any) -> Any:
    """The member of ``union`` that pydantic names ``tag`` in a location (its ``Tag``, else its model name)."""
    if not isinstance(tag, str):
        return None
    for a in _members(union):
        if typing.get_origin(a) is Annotated:
            if any(isinstance(meta, Tag) and meta.tag == tag for meta in typing.get_args(a)[1:]):
                return a
        m = _model_of(a)
        if m is not None and m.__name__ == tag:
            return a
    return None


def _first_model_member(union: Any) -> Any:
    members = _members(union)
    return next((a for a in members if _model_of(a) is not None), members[0])


def _models_in(ann: Any) -> list[type[BaseModel]]:
    """The models a value at ``ann`` may be read as: one, or every model member of a union."""
    u = _unwrap(ann)
    if _is_union(u):
        return [m for m in (_model_of(_unwrap(a)) for a in _members(u)) if m is not None]
    m = _model_of(u)
    return [] if m is None else [m]


def _model_of(ann: Any) -> type[BaseModel] | None:
    ann = _unwrap(ann)
    if _is_union(ann):
        ann = _unwrap(_first_model_member(ann))
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def _free_table(ann: Any) -> bool:
    u = _unwrap(ann)
    return u is Any or typing.get_origin(u) is dict or _is_union(u)


def _keys_allowed(scope: Any, prefix: Sequence[Any]) -> str:
    models = _models_in(scope) if scope is not None else []
    if not models:
        return "a key the scenario defines"
    names = ", ".join(dict.fromkeys(k for m in models for k in getattr(m, "key_order", m.model_fields)))
    if not prefix:
        return f"the sections {names}"
    section = dotted([p for p in prefix if isinstance(p, str)])
    brackets = f"[[{section}]]" if any(isinstance(p, int) for p in prefix) else f"[{section}]"
    return f"the keys of {brackets}: {names}"
