"""Strategy parameter descriptions built from the registry's Params dataclasses."""

from __future__ import annotations

import dataclasses

import pytest

from core.errors import WorkbenchError
from core.mining import get_strategy, parse_params, strategy_names
from core.params_form import param_specs, strategy_presets, strategy_summary


@pytest.mark.parametrize("name", strategy_names())
def test_specs_cover_every_field_and_defaults_parse(name):
    strategy = get_strategy(name)
    specs = param_specs(name)
    assert [s.name for s in specs] == [f.name for f in dataclasses.fields(strategy.Params)]
    assert all(s.kind in ("int", "float", "str", "bool") for s in specs)
    defaults = {s.name: s.default for s in specs if s.default is not None}
    assert parse_params(strategy, defaults) == strategy.Params()
    for preset in strategy_presets(name).values():
        parse_params(strategy, preset)
    assert strategy_summary(name)


def test_help_comes_from_the_attributes_section():
    specs = {s.name: s for s in param_specs("rank_window")}
    assert specs["lo"].help.startswith("first rank that may be sampled")
    optional = {s.name: s for s in param_specs("positive_aware")}["threshold"]
    assert optional.optional and optional.default is None and optional.kind == "float"


def test_unknown_strategy_is_a_readable_error():
    with pytest.raises(WorkbenchError, match="unknown strategy"):
        param_specs("nope")
