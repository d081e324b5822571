"""Describe a mining strategy's parameters so a form can be built from the registry.

Each strategy's ``Params`` dataclass is the single source: field names, types, defaults, and the
help text from the ``Attributes:`` section of its docstring.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass
from typing import Any

from core.mining import get_strategy

_ATTRIBUTE = re.compile(r"^\s{4,}(\w+):\s*(.*)$")


@dataclass(frozen=True)
class ParamSpec:
    """One strategy parameter.

    Attributes:
        name: the field name (``--param NAME=VALUE`` on the command line).
        kind: "int", "float", "str" or "bool".
        default: the dataclass default (None when optional and unset).
        optional: None is allowed (it means "the strategy's own default").
        help: one line from the Params docstring ('' when undocumented).
    """

    name: str
    kind: str
    default: Any
    optional: bool
    help: str


def _attribute_help(doc: str | None) -> dict[str, str]:
    """Field -> description from a Google-style ``Attributes:`` section (continuations joined)."""
    helps: dict[str, str] = {}
    current = None
    for line in (doc or "").splitlines():
        match = _ATTRIBUTE.match(line)
        if match and (match.group(1) not in ("Attributes",)):
            current = match.group(1)
            helps[current] = match.group(2).strip()
        elif current and line.strip() and line.startswith(" " * 8):
            helps[current] += " " + line.strip()
        elif not line.strip():
            current = None
    return helps


def param_specs(strategy_name: str) -> list[ParamSpec]:
    """The parameters of a registered strategy, in declaration order.

    Raises:
        WorkbenchError: unknown strategy.
    """
    params_type = get_strategy(strategy_name).Params
    hints = typing.get_type_hints(params_type)
    helps = _attribute_help(params_type.__doc__)
    specs = []
    for field in dataclasses.fields(params_type):
        hint = hints[field.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = type(None) in typing.get_args(hint)
        kind = (args[0] if args else hint).__name__
        default = None if field.default is dataclasses.MISSING else field.default
        specs.append(ParamSpec(field.name, kind, default, optional, helps.get(field.name, "")))
    return specs


def strategy_presets(strategy_name: str) -> dict[str, dict[str, Any]]:
    """The strategy's named presets from the papers (name -> parameter values)."""
    return dict(get_strategy(strategy_name).presets)


def strategy_summary(strategy_name: str) -> str:
    """The strategy's one-line summary."""
    return get_strategy(strategy_name).summary
