"""Command-line flags generated from settings models: each setting is declared once, as a pydantic field (its name,
type, constraints, choices and description), and becomes a flag here.

``--field-name`` by default; a field's ``Flag`` metadata may rename it, make it repeatable, read ``key=value`` pairs
or hide it. A nested model (``hparams``) becomes a group of flags of its own. Values are checked against the field
as they are collected, so a bad value is one message naming the flag.
"""

from __future__ import annotations

import argparse
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from fpt_bench.api.errors import UserError
from fpt_bench.api.options import Flag


@dataclass(frozen=True)
class _Entry:
    dest: str
    option: str
    path: tuple[str, ...]  # where the value goes in the collected dict
    info: FieldInfo
    flag: Flag
    owner: str | None  # the executor whose flag this is (values go to executor_args)


def _flag_of(info: FieldInfo) -> Flag:
    return next((m for m in info.metadata if isinstance(m, Flag)), Flag())


def _plain(annotation: Any) -> Any:
    """``X | None`` -> ``X``."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


class ModelFlags:
    """Adds flags to a parser from settings models and collects their values into a dict for those models."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser
        self.entries: list[_Entry] = []
        self._options: dict[str, str] = {}  # option -> who declared it

    def add_model(self, model: type[BaseModel], title: str | None = None, *, into: Any = None,
                  only: frozenset[str] | None = None, path: tuple[str, ...] = (), owner: str | None = None) -> None:
        """Flags for the fields of ``model`` (those in ``only``, when given), in a new group ``title`` or in
        ``into`` (a group or the parser)."""
        group = into if into is not None else self.parser.add_argument_group(title) if title else self.parser
        for name, info in model.model_fields.items():
            flag = _flag_of(info)
            if flag.hidden or (only is not None and name not in only):
                continue
            annotation = _plain(info.annotation)
            if _is_model(annotation):
                self.add_model(annotation, info.description or name, path=(*path, name), owner=owner)
                continue
            option = flag.name or "--" + name.replace("_", "-")
            who = f"executor {owner!r}" if owner else "fpt-bench"
            if option in self._options:
                raise UserError(f"the flag {option} is declared twice: by {self._options[option]} and by {who}")
            self._options[option] = who
            dest = "flag__" + "__".join((owner or "", *path, name))
            self.entries.append(_Entry(dest, option, (*path, name), info, flag, owner))
            group.add_argument(option, dest=dest, **_argparse_kwargs(name, annotation, info, flag))

    def values(self, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str]]:
        """The given flags' values as a nested dict, and which executor each executor flag belongs to
        (option -> executor name)."""
        out: dict[str, Any] = {}
        owners: dict[str, str] = {}
        for entry in self.entries:
            raw = getattr(args, entry.dest, None)
            if raw is None:
                continue
            value = _parse(entry, raw)
            target = out
            path = ("executor_args", *entry.path) if entry.owner else entry.path
            for key in path[:-1]:
                target = target.setdefault(key, {})
            target[path[-1]] = value
            if entry.owner:
                owners[entry.option] = entry.owner
        return out, owners


def _argparse_kwargs(name: str, annotation: Any, info: FieldInfo, flag: Flag) -> dict[str, Any]:
    default = info.get_default(call_default_factory=True)
    shown = "" if default in (None, [], {}, False) else f" (default {default})"
    kwargs: dict[str, Any] = {"help": (info.description or "") + ("" if "default" in (info.description or "")
                                                                   else shown), "default": None}
    if annotation is bool:  # off by default: a switch; otherwise (an override, None by default) --x / --no-x
        kwargs["action"] = "store_const" if default is False else argparse.BooleanOptionalAction
        if default is False:
            kwargs["const"] = True
        return kwargs
    if flag.repeat:
        kwargs["action"] = "append"
    if typing.get_origin(annotation) is Literal:
        kwargs["choices"] = [str(c) for c in typing.get_args(annotation)]
    else:
        kwargs["metavar"] = flag.metavar or ("K=V,..." if flag.kv else name.upper())
    return kwargs


def _parse(entry: _Entry, raw: Any) -> Any:
    """A flag's raw string(s) -> the value, checked against the field (one message naming the flag)."""
    from fpt_bench.cells.config import convert, parse_kv

    annotation = _plain(entry.info.annotation)
    origin = typing.get_origin(annotation)
    if entry.flag.kv:
        value: Any = parse_kv(raw, entry.option)
    elif origin is dict:  # a repeatable KEY=V1,V2 (a sweep dimension per flag)
        value = {}
        for item in raw:
            key, sep, rest = item.partition("=")
            if not sep or not key.strip() or not rest.strip():
                raise UserError(f"{entry.option} {item!r}: expected KEY=V1,V2,..., e.g. {entry.option} lr=1e-4,1e-3")
            value[key.strip()] = [convert(v.strip()) for v in rest.split(",") if v.strip()]
        return value  # checked by the model (it knows which keys exist)
    elif origin is list and not entry.flag.repeat:
        value = [v.strip() for v in raw.split(",") if v.strip()]
    else:
        value = raw
    try:
        constraints = [m for m in entry.info.metadata if not isinstance(m, Flag)]
        kind = Annotated[(entry.info.annotation, *constraints)] if constraints else entry.info.annotation
        return TypeAdapter(kind).validate_python(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        item = f" (item {error['loc'][0] + 1})" if error["loc"] and isinstance(error["loc"][0], int) else ""
        raise UserError(f"{entry.option} {_shown(raw)}{item}: {error['msg']}") from None


def _shown(raw: Any) -> str:
    return repr(raw if not isinstance(raw, list) or len(raw) != 1 else raw[0])


class RunFlags:
    """What the ``fpt_bench_add_run_flags`` hook receives: ``add_options(model, executor=NAME)``."""

    def __init__(self, flags: ModelFlags) -> None:
        self._flags = flags

    def add_options(self, model: type[BaseModel], *, executor: str) -> None:
        self._flags.add_model(model, f"{executor} executor", owner=executor)
