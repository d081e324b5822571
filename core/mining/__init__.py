"""Mining strategies: one module each, one signature, one explicit registry.

The CLI's ``--strategy`` choices and the app's strategy picker both read ``strategy_names()``.
"""

from __future__ import annotations

from core.errors import WorkbenchError
from core.registry import Registry
from core.mining.base import (
    MiningContext, QueryPool, Selection, Strategy, params_dict, parse_params,
)

_REGISTRY: Registry[Strategy] = Registry("strategy", WorkbenchError)


def register(strategy: Strategy) -> Strategy:
    """Add a strategy; a second strategy under the same name is refused (ValueError)."""
    return _REGISTRY.register(strategy.name, strategy)


def get_strategy(name: str) -> Strategy:
    """Return a registered strategy by name.

    Raises:
        WorkbenchError: unknown name (the message lists the valid ones).
    """
    return _REGISTRY.get(name)


def strategy_names() -> list[str]:
    """Names of the registered strategies, in registration order."""
    return _REGISTRY.names()


def _register_builtins() -> None:
    from core.mining import (
        bm25, cluster, curated, positive_aware, rank_window, simans, top_k,
    )

    for module in (curated, top_k, positive_aware, rank_window, simans, cluster, bm25):
        register(module.STRATEGY)


_register_builtins()

__all__ = [
    "MiningContext", "QueryPool", "Selection", "Strategy", "get_strategy", "params_dict",
    "parse_params", "register", "strategy_names",
]
