"""Strategies: the registry, the built-ins, the generated signal pipeline and its two drivers.

| module | its one job |
| --- | --- |
| `registry` | which strategies run, in order, and how config becomes their named parameters |
| `builtins` | registers the seed's five strategies and the EMA-crossover example from their declarations |
| `codegen` | writes, keys and imports the fused pipeline module (features → strategies → combiner) |
| `pipeline` | `Pipeline` (bound to a config; `batch` / `step`), `compute_signals`, `SignalStepper` |

A strategy is one numba kernel registered by name (`register_strategy`), its parameters and state
declared by name (`declare`); it then takes part in backtests, sweeps and live trading with no other code.
"""

from cryptobot.kernels.strategies import Layout, declare
from cryptobot.strategies import builtins as _builtins  # noqa: F401  (registers the built-ins, in order)
from cryptobot.strategies.pipeline import (
    Pipeline,
    PipelineState,
    SignalArrays,
    SignalResult,
    SignalStepper,
    base_timeframe,
    check_spacing,
    compute_signals,
    signal_columns,
)
from cryptobot.strategies.registry import (
    StrategySpec,
    active_strategies,
    register,
    register_strategy,
    registered,
    unregister_strategy,
)

__all__ = [
    "Layout",
    "Pipeline",
    "PipelineState",
    "SignalArrays",
    "SignalResult",
    "SignalStepper",
    "StrategySpec",
    "active_strategies",
    "base_timeframe",
    "check_spacing",
    "compute_signals",
    "declare",
    "register",
    "register_strategy",
    "registered",
    "signal_columns",
    "unregister_strategy",
]
