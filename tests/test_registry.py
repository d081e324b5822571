"""The shared registry: order, duplicates refused, unknown names listed."""

import pytest

from core.errors import WorkbenchError
from core.registry import Registry


def test_registry_keeps_order_and_refuses_duplicates():
    reg: Registry[int] = Registry("widget", WorkbenchError)
    reg.register("b", 2)
    reg.register("a", 1)
    assert reg.names() == ["b", "a"] and reg.get("a") == 1
    with pytest.raises(ValueError, match="a widget named 'a' is already registered"):
        reg.register("a", 3)
    with pytest.raises(WorkbenchError, match="unknown widget 'z'; choose one of b, a"):
        reg.get("z")
