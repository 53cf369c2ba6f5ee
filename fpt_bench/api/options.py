"""Options: every component (task, backbone, freeze policy, executor) declares what it accepts as one pydantic
model, ``Options``; a typo is an error with a "did you mean", never a silent default.

``Flag`` marks a field of a settings model with its command-line flag when the flag is not simply
``--field-name`` (``fpt-bench run``'s flags are generated from its settings models, see ``fpt_bench.cli.flags``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from fpt_bench.api.errors import UserError


class Strict(BaseModel):
    """A settings model that refuses unknown keys (a typo is an error, not a default)."""

    model_config = ConfigDict(extra="forbid")


class NoOptions(Strict):
    """The options of a component that takes none."""


@dataclass(frozen=True)
class Flag:
    """How a settings field appears on the command line (as ``Annotated[type, Flag(...)]`` metadata).

    ``name``: the flag (default ``--field-name``); ``repeat``: the flag may be given several times, each adding one
    item; ``kv``: the value is ``key=value,...`` pairs (a table); ``hidden``: not a flag (file-only setting)."""

    name: str | None = None
    repeat: bool = False
    kv: bool = False
    hidden: bool = False
    metavar: str | None = None


class Configurable:
    """What every component shares: an ``Options`` model and ``options(args)`` validating a dict against it.

    ``component_kind`` and ``options_flag`` name the component and where its arguments come from, for messages."""

    Options: ClassVar[type[BaseModel]] = NoOptions
    component_kind: ClassVar[str] = "component"
    options_flag: ClassVar[str] = "options"
    spec: Any

    def options(self, args: dict[str, Any]) -> BaseModel:
        try:
            return self.Options(**args)
        except ValidationError as exc:
            raise UserError(f"bad {self.options_flag} for {self.component_kind} {self.spec.name!r}: "
                            f"{brief_validation_error(exc, self.Options)}") from None


def brief_validation_error(exc: ValidationError, model: type[BaseModel] | None = None) -> str:
    """One line per pydantic error; an unknown top-level key of ``model`` gets a "did you mean" (or the keys it
    accepts)."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(value)"
        text = f"{loc}: {err['msg']}"
        if err["type"] == "extra_forbidden" and model is not None and len(err["loc"]) == 1:
            text += _suggest(str(err["loc"][0]), model)
        parts.append(text)
    return "; ".join(parts)


def _suggest(key: str, model: type[BaseModel]) -> str:
    """A hint for an unknown ``key``: the closest field, also of a nested table (``steps`` -> ``hparams.steps``)."""
    known = list(model.model_fields)
    nested = {name: f"{field}.{name}" for field, info in model.model_fields.items()
              if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
              for name in info.annotation.model_fields}
    for pool, where in ((known, None), (list(nested), nested)):
        close = difflib.get_close_matches(key, pool, n=1, cutoff=0.8 if where is None else 0.75)
        if close:
            return f" (did you mean {(where or {}).get(close[0], close[0])!r}?)"
    if not known:
        return " (it takes no options)"
    return f" (accepted: {', '.join(known)})"
