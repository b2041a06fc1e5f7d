"""The strategy registry: which strategies run, in which order, and how config becomes their parameters.

A strategy is a step kernel (the common array signature of `cryptobot.kernels.strategies`) registered by
name, optionally with a scalar-state *core* the generated pipeline inlines (the built-ins have one). Its
parameters and state are declared by name (`declare`); the registry packs the parameter vector by those
names, so nothing depends on the order of a dict or a list kept beside the kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cryptobot.config import Config
from cryptobot.kernels.strategies import Layout

ParamsFn = Callable[[Config, int], np.ndarray]


@dataclass(frozen=True)
class StrategySpec:
    """A registered strategy: its kernels and how config becomes its parameters, state and warm-up."""

    name: str
    step: Any  # numba dispatcher with the common strategy signature (array state)
    params: ParamsFn  # (config, base timeframe ms) -> float64 parameter vector
    state_size: Callable[[np.ndarray], int]
    warmup: Callable[[Config, int], int]  # bars before the strategy can signal
    enabled: Callable[[Config], bool]
    weight: Callable[[Config], float]
    layout: Layout | None = None  # the declaration (named parameters and state), when there is one
    core: Any = None  # inline scalar-state core (`cryptobot.kernels.strategies`), carried in registers

    def new_state(self, p: np.ndarray) -> np.ndarray:
        """The initial state array: the declared initial values, zeros for an undeclared state."""
        st = np.zeros(int(self.state_size(p)), dtype=np.float64)
        if self.layout is not None:
            st[: self.layout.n_state] = self.layout.init
        return st

    @property
    def shape(self) -> str:
        """What the signal layout digest hashes for this strategy."""
        return self.layout.shape if self.layout is not None else repr((self.name, "undeclared"))


_REGISTRY: dict[str, StrategySpec] = {}


def register(spec: StrategySpec) -> StrategySpec:
    if not spec.name.isidentifier():
        raise ValueError(f"strategy name {spec.name!r} must be a Python identifier (it names columns)")
    if spec.layout is not None and spec.layout.name != spec.name:
        raise ValueError(f"strategy {spec.name!r} registered with the declaration of {spec.layout.name!r}")
    _REGISTRY[spec.name] = spec
    return spec


def register_strategy(
    name: str,
    step: Any,
    *,
    layout: Layout | None = None,
    defaults: dict[str, float] | None = None,
    state_size: int | Callable[[np.ndarray], int] | None = None,
    warmup: int,
    enabled: bool = True,
    weight: float = 1.0,
) -> StrategySpec:
    """Register a researcher's own strategy: one numba step kernel plus its parameters, state and warm-up.

    Declare parameters and state by name with `layout=declare(name, params=(("fast", 10.0), ...),
    state=(...))` and read them in the kernel as `p[P.fast]`, `st[S.prev]` (`P, S = layout.P, layout.S`).
    The older form still works: `defaults` names the parameters in the order the kernel reads them and
    `state_size` gives the (zero-initialised) state size. Config `strategies.custom.<name>` may override
    `enabled`, `weight` and any parameter. After this call the strategy takes part in `compute_signals`,
    `SignalStepper`, backtests, sweeps and live trading.
    """
    if layout is None:
        if defaults is None or state_size is None:
            raise ValueError(f"register_strategy({name!r}): pass layout=declare(...), or defaults= and state_size=")
        values0 = {k: float(v) for k, v in defaults.items()}
        size_fn = state_size if callable(state_size) else (lambda p, n=int(state_size): n)
    else:
        if defaults is not None or state_size is not None:
            raise ValueError(f"register_strategy({name!r}): the layout declares parameters and state already")
        missing = [n for n in layout.P._fields if n not in layout.defaults]
        if missing:
            raise ValueError(f"register_strategy({name!r}): parameters {missing} need a default in the declaration")
        values0 = dict(layout.defaults)
        size_fn = layout.state_size
    names = list(values0)

    def params(cfg: Config, base_ms: int) -> np.ndarray:
        custom = cfg.strategies.custom.get(name)
        values = dict(values0)
        if custom is not None:
            unknown = sorted(set(custom.params) - set(values))
            if unknown:
                raise ValueError(f"strategies.custom.{name}.params: unknown parameter(s) {unknown}; known: {names}")
            values.update(custom.params)
        return np.array([float(values[k]) for k in names], dtype=np.float64)

    return register(
        StrategySpec(
            name=name,
            step=step,
            params=params,
            state_size=size_fn,
            warmup=lambda cfg, base_ms: warmup,
            enabled=lambda cfg: cfg.strategies.custom[name].enabled if name in cfg.strategies.custom else enabled,
            weight=lambda cfg: cfg.strategies.custom[name].weight if name in cfg.strategies.custom else weight,
            layout=layout,
        )
    )


def unregister_strategy(name: str) -> None:
    _REGISTRY.pop(name, None)


def registered() -> tuple[str, ...]:
    """The strategy names in `specs()` order (the order of vote columns and voter bits)."""
    return tuple(s.name for s in specs())


def specs() -> tuple[StrategySpec, ...]:
    """The registered strategies in pipeline order: those with a scalar core (the built-ins) first, then those
    registered with an array step kernel, each group in registration order (the fused module runs the first)."""
    ordered = list(_REGISTRY.values())
    return tuple(s for s in ordered if s.core is not None) + tuple(s for s in ordered if s.core is None)


def active_strategies(config: Config) -> list[str]:
    """The registered strategies this config enables, in `registered()` order (what a run names as having run)."""
    return [spec.name for spec in specs() if spec.enabled(config)]
