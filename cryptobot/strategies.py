"""Strategies: the registry, the fused numba pipeline (features → strategies → combiner), and its two drivers.

A strategy is one numba step kernel with the signature of `cryptobot.kernels.strategies` registered by
name. The registry writes a small Python module that calls every registered step in one compiled function
(numba cannot loop over a list of functions cheaply) into a cache directory and imports it, so numba's
`cache=True` works and a warm start compiles nothing. `compute_signals` loops that step over history;
`SignalStepper` calls it once per closed bar for the live adapter — the same code, so parity is structural.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import sys
import sysconfig
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import CodeType, ModuleType
from typing import Any

import numpy as np
import pandas as pd
from numba.core.caching import NullCache

from cryptobot import atomic
from cryptobot.config import Config
from cryptobot.data.frames import ms_to_iso, timeframe_to_ms, timestamps_ms
from cryptobot.data.validate import infer_timeframe
from cryptobot.features import FEATURE_ORDER, LAYOUT_DIGEST, check_layout, feature_params
from cryptobot.kernels import combiner as cb
from cryptobot.kernels import features as fk
from cryptobot.kernels import strategies as sk

ParamsFn = Callable[[Config, int], np.ndarray]


@dataclass(frozen=True)
class StrategySpec:
    """A registered strategy: its step kernel and how config becomes its parameters, state and warm-up."""

    name: str
    step: Any  # numba dispatcher with the common strategy signature
    params: ParamsFn  # (config, base timeframe ms) -> float64 parameter vector
    state_size: Callable[[np.ndarray], int]
    warmup: Callable[[Config, int], int]  # bars before the strategy can signal
    enabled: Callable[[Config], bool]
    weight: Callable[[Config], float]


_REGISTRY: dict[str, StrategySpec] = {}


def register(spec: StrategySpec) -> StrategySpec:
    if not spec.name.isidentifier():
        raise ValueError(f"strategy name {spec.name!r} must be a Python identifier (it names columns)")
    _REGISTRY[spec.name] = spec
    return spec


def register_strategy(
    name: str,
    step: Any,
    *,
    defaults: dict[str, float],
    state_size: int | Callable[[np.ndarray], int],
    warmup: int,
    enabled: bool = True,
    weight: float = 1.0,
) -> StrategySpec:
    """Register a researcher's own strategy: one numba step kernel plus its parameters, state and warm-up.

    `defaults` names the parameters in the order the kernel reads them from its parameter vector; config
    `strategies.custom.<name>` may override `enabled`, `weight` and any of `params`. After this call the
    strategy takes part in `compute_signals`, `SignalStepper`, backtests, sweeps and live trading.
    """
    names = list(defaults)

    def params(cfg: Config, base_ms: int) -> np.ndarray:
        custom = cfg.strategies.custom.get(name)
        values = dict(defaults)
        if custom is not None:
            unknown = sorted(set(custom.params) - set(values))
            if unknown:
                raise ValueError(f"strategies.custom.{name}.params: unknown parameter(s) {unknown}; known: {names}")
            values.update(custom.params)
        return np.array([float(values[k]) for k in names], dtype=np.float64)

    size_fn = state_size if callable(state_size) else (lambda p, n=int(state_size): n)
    return register(
        StrategySpec(
            name=name,
            step=step,
            params=params,
            state_size=size_fn,
            warmup=lambda cfg, base_ms: warmup,
            enabled=lambda cfg: cfg.strategies.custom[name].enabled if name in cfg.strategies.custom else enabled,
            weight=lambda cfg: cfg.strategies.custom[name].weight if name in cfg.strategies.custom else weight,
        )
    )


def unregister_strategy(name: str) -> None:
    _REGISTRY.pop(name, None)


def registered() -> tuple[str, ...]:
    return tuple(_REGISTRY)


# ------------------------------------------------------------------------------ built-in strategies
def _section(name: str) -> Callable[[Config], Any]:
    return lambda cfg: getattr(cfg.strategies, name)


def _builtin(name: str, step: Any, size: Any, values: Callable[[Any, Config, int], list[float]],
             warmup: Callable[[Config, int], int]) -> None:
    section = _section(name)
    register(
        StrategySpec(
            name=name,
            step=step,
            params=lambda cfg, base_ms: np.array(values(section(cfg), cfg, base_ms), dtype=np.float64),
            state_size=lambda p: int(size(p)),
            warmup=warmup,
            enabled=lambda cfg: bool(section(cfg).enabled),
            weight=lambda cfg: float(section(cfg).weight),
        )
    )


def _feature_warmup(cfg: Config, *names: str) -> int:
    w = fk.features_warmup(feature_params(cfg.features))
    return int(max(w[FEATURE_ORDER.index(n)] for n in names))


_builtin(
    "atr_based", sk.atr_based_step, sk.atr_based_state_size,
    lambda s, cfg, ms: [s.bb_overbought, s.bb_oversold, s.rsi_overbought, s.rsi_oversold, s.base_confidence,
                        s.confidence_multiplier, s.min_confidence, s.low_volatility_ratio, s.high_volatility_ratio,
                        s.volatility_lookback, s.sl_atr, s.tp_atr],
    lambda cfg, ms: _feature_warmup(cfg, "atr_14", "bb_position", "rsi_14"),
)
_builtin(
    "mochipoy_alert", sk.mochipoy_alert_step, sk.mochipoy_state_size,
    lambda s, cfg, ms: [s.rci_period, s.rci_overbought, s.rci_oversold, s.strong_confidence, s.vote_step,
                        s.weak_confidence, s.max_confidence, s.min_confidence, s.sl_atr, s.tp_atr],
    lambda cfg, ms: max(_feature_warmup(cfg, "ema_50", "macd", "atr_14"), cfg.strategies.mochipoy_alert.rci_period - 1),
)
_builtin(
    "multi_timeframe", sk.multi_timeframe_step, sk.multi_timeframe_state_size,
    lambda s, cfg, ms: [s.trend_lookback, s.min_trend_strength, s.min_volatility, s.entry_lookback,
                        s.rsi_overbought, s.rsi_oversold, s.trend_weight, s.entry_weight, s.min_confidence,
                        s.sl_atr, s.tp_atr, ms, timeframe_to_ms(cfg.data.higher_timeframe), cfg.features.ema_slow,
                        cfg.features.atr_period],
    lambda cfg, ms: int(
        -(-(cfg.features.ema_slow + cfg.strategies.multi_timeframe.trend_lookback + 1)
          * timeframe_to_ms(cfg.data.higher_timeframe) // ms)
    ),
)
_builtin(
    "donchian_channel", sk.donchian_channel_step, sk.donchian_state_size,
    lambda s, cfg, ms: [s.breakout_threshold, s.breakout_volume_ratio, s.breakout_confidence, s.reversal_threshold,
                        s.weak_zone_low, s.weak_zone_high, s.middle_zone_min, s.middle_zone_max,
                        s.weak_signal_confidence, s.min_confidence, s.sl_atr, s.tp_atr],
    lambda cfg, ms: _feature_warmup(cfg, "channel_position", "volume_ratio", "atr_14") + 1,
)
_builtin(
    "adx_trend_strength", sk.adx_trend_strength_step, sk.adx_state_size,
    lambda s, cfg, ms: [s.strong_trend_threshold, s.weak_trend_threshold, s.di_crossover_threshold,
                        s.weak_di_threshold, s.moderate_di_threshold, s.di_weak_signal_confidence, s.min_confidence,
                        s.sl_atr, s.tp_atr, s.strong_trend_multiplier, float(s.trade_weak_trend)],
    lambda cfg, ms: _feature_warmup(cfg, "adx_14", "volume_ratio", "atr_14") + 1,
)
_builtin(
    "ema_cross", sk.ema_cross_step, sk.ema_cross_state_size,
    lambda s, cfg, ms: [s.fast, s.slow, s.sl_pct, s.tp_pct],
    lambda cfg, ms: cfg.strategies.ema_cross.slow,
)

# ------------------------------------------------------------------------------ generated pipeline
_TEMPLATE = '''"""Generated by cryptobot.strategies for the strategies: {names}. Do not edit: regenerated on demand."""
import numpy as np
from numba import njit

from cryptobot.kernels.combiner import N_OUT, combine
from cryptobot.kernels.features import N_FEATURES, feature_layout, features_step


@njit(cache=True)
def _off(vote):
    vote[0] = 0.0
    vote[1] = 0.0
    vote[2] = np.nan
    vote[3] = np.nan


@njit(cache=True)
def pipeline_step(fst, fp, foff, sst, sp, soff, poff, weights, enabled, cp, ts, bar, feat, votes, out):
    if features_step(fst, fp, foff, bar[0], bar[1], bar[2], bar[3], bar[4], feat):
{calls}
    else:
        for k in range(votes.shape[0]):
            _off(votes[k])
    combine(votes, weights, enabled, cp, out)


@njit(cache=True)
def pipeline_batch(fst, fp, sst, sp, soff, poff, weights, enabled, cp, ts, o, h, lo, c, v):
    n = c.shape[0]
    foff = feature_layout(fp)
    feats = np.empty((n, N_FEATURES))
    votes = np.empty((n, {k}, 4))
    outs = np.empty((n, N_OUT))
    bar = np.empty(5)
    for i in range(n):
        bar[0] = o[i]
        bar[1] = h[i]
        bar[2] = lo[i]
        bar[3] = c[i]
        bar[4] = v[i]
        pipeline_step(fst, fp, foff, sst, sp, soff, poff, weights, enabled, cp, ts[i], bar, feats[i], votes[i], outs[i])
    return feats, votes, outs
'''


def _pipeline_dir() -> Path:
    root = os.environ.get("CRYPTOBOT_PIPELINE_DIR")
    base = Path(root) if root else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cryptobot" / "pipelines"
    try:
        base.mkdir(parents=True, exist_ok=True)
        return base
    except OSError:
        fallback = Path(tempfile.gettempdir()) / "cryptobot-pipelines"
        fallback.mkdir(parents=True, exist_ok=True)
        return fallback


_KERNEL_DIR = Path(fk.__file__).resolve().parent
_LIBRARY_DIRS = tuple(Path(sysconfig.get_paths()[k]).resolve() for k in ("stdlib", "purelib", "platlib"))
_CONSTANT_TYPES = (bool, int, float, complex, str, bytes, np.generic, np.ndarray, tuple, type(None))


def _code_names(code: CodeType) -> set[str]:
    """Global and attribute names a function's code (and the code nested in it) reads."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, CodeType):
            names |= _code_names(const)
    return names


def _hash_value(digest: Any, name: str, value: Any) -> None:
    digest.update(f"{name}={type(value).__name__}:".encode())
    if isinstance(value, np.ndarray):
        digest.update(f"{value.dtype.str}{value.shape}".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, tuple):
        for i, item in enumerate(value):
            if isinstance(item, _CONSTANT_TYPES):
                _hash_value(digest, f"{name}[{i}]", item)
    else:
        digest.update(repr(value).encode())


def _dependencies(step: Any) -> tuple[str, list[Any]]:
    """Digest of everything a step's compiled code depends on, and the dispatchers outside `cryptobot.kernels`.

    numba freezes module-level globals into the machine code and links every jitted callee into it, so the
    generated pipeline must be rebuilt when any of them changes, not only when the step's own source does:
    the digest covers the full source file of the step and of every function it reaches through its globals
    (recursively, through module attributes too) and the values of the constants those functions read.
    """
    digest = hashlib.sha256()
    seen: set[int] = set()
    files: set[str] = set()
    outside: list[Any] = []
    stack: list[Any] = [step]
    while stack:
        obj = stack.pop()
        func = getattr(obj, "py_func", obj)
        if not inspect.isfunction(func) or id(func) in seen:
            continue
        seen.add(id(func))
        digest.update(f"fn {func.__module__}:{func.__qualname__}\n".encode())
        digest.update(func.__code__.co_code)
        try:
            path = inspect.getsourcefile(func)
        except TypeError:
            path = None
        if path and any(lib == Path(path).resolve() or lib in Path(path).resolve().parents for lib in _LIBRARY_DIRS):
            continue  # numpy, numba, the standard library: pinned by their versions, not hashed
        if path and path not in files and os.path.isfile(path):
            files.add(path)
            digest.update(Path(path).read_bytes())
        if obj is not func and hasattr(obj, "_cache") and (not path or _KERNEL_DIR not in Path(path).resolve().parents):
            outside.append(obj)
        names = sorted(_code_names(func.__code__))
        scope = dict(func.__globals__)
        if func.__closure__:
            scope.update(zip(func.__code__.co_freevars, (c.cell_contents for c in func.__closure__), strict=True))
        for name in sorted(set(names) | set(func.__code__.co_freevars)):
            if name not in scope:
                continue
            value = scope[name]
            if isinstance(value, ModuleType):
                for attr in names:
                    member = getattr(value, attr, None)
                    if isinstance(member, _CONSTANT_TYPES) and member is not None:
                        _hash_value(digest, f"{name}.{attr}", member)
                    elif callable(member):
                        stack.append(member)
            elif isinstance(value, _CONSTANT_TYPES):
                _hash_value(digest, name, value)
            elif callable(value):
                stack.append(value)
    return digest.hexdigest(), outside


_MODULES: dict[str, ModuleType] = {}


def _pipeline_module(specs: tuple[StrategySpec, ...]) -> ModuleType:
    calls = "\n".join(
        f"        if enabled[{i}]:\n"
        f"            _s{i}(sst[soff[{i}]:soff[{i + 1}]], sp[poff[{i}]:poff[{i + 1}]], ts, bar, feat, votes[{i}])\n"
        f"        else:\n"
        f"            _off(votes[{i}])"
        for i in range(len(specs))
    )
    source = _TEMPLATE.format(names=", ".join(s.name for s in specs), calls=calls or "        pass", k=len(specs))
    deps = [_dependencies(s.step) for s in specs]
    key = hashlib.sha256((source + "\n".join(d for d, _ in deps)).encode()).hexdigest()[:16]
    if key in _MODULES:
        return _MODULES[key]
    for _, outside in deps:
        for dispatcher in outside:
            # numba's own cache of a function outside the kernel tree is keyed on that function's file only
            # (not on the helpers and constants it inlines from elsewhere); the pipeline cache above is keyed
            # on all of them, so such a function is compiled fresh whenever a new pipeline is.
            dispatcher._cache = NullCache()
    path = _pipeline_dir() / f"pipeline_{key}.py"
    if not path.exists() or path.read_text() != source:
        atomic.write_text(path, source)
    spec = importlib.util.spec_from_file_location(f"cryptobot_pipeline_{key}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # numba's cache re-imports the module by name when it loads
    for i, s in enumerate(specs):
        module.__dict__[f"_s{i}"] = s.step  # strategies are globals of the generated code
    spec.loader.exec_module(module)
    _MODULES[key] = module
    return module


@dataclass
class Pipeline:
    """The registered strategies bound to one config and base timeframe: parameter and state arrays."""

    names: tuple[str, ...]
    module: ModuleType
    fp: np.ndarray
    sp: np.ndarray
    poff: np.ndarray
    soff: np.ndarray
    weights: np.ndarray
    enabled: np.ndarray
    cp: np.ndarray
    warmup: int
    base_ms: int

    @classmethod
    def build(cls, config: Config, base_ms: int) -> Pipeline:
        specs = tuple(_REGISTRY.values())
        params = [s.params(config, base_ms) for s in specs]
        sizes = [s.state_size(p) for s, p in zip(specs, params, strict=True)]
        enabled = np.array([s.enabled(config) for s in specs], dtype=np.bool_)
        method = cb.METHOD_WEIGHTED_SUM if config.strategies.combiner.method == "weighted_sum" else cb.METHOD_AVERAGE_CONFIDENCE
        warm = [s.warmup(config, base_ms) for s, on in zip(specs, enabled, strict=True) if on]
        return cls(
            names=tuple(s.name for s in specs),
            module=_pipeline_module(specs),
            fp=feature_params(config.features),
            sp=np.concatenate(params) if params else np.zeros(0),
            poff=np.cumsum([0, *[p.size for p in params]]).astype(np.int64),
            soff=np.cumsum([0, *sizes]).astype(np.int64),
            weights=np.array([s.weight(config) for s in specs], dtype=np.float64),
            enabled=enabled,
            cp=np.array([method, config.strategies.combiner.min_conflict_threshold,
                         config.strategies.combiner.min_score], dtype=np.float64),
            warmup=max(warm, default=0),
            base_ms=base_ms,
        )

    def new_state(self) -> tuple[np.ndarray, np.ndarray]:
        return fk.features_init(self.fp), np.zeros(int(self.soff[-1]), dtype=np.float64)


def base_timeframe(config: Config, timeframe: str | None = None) -> str:
    """The one rule for the base timeframe of `compute_signals` and `SignalStepper`.

    The explicit `timeframe`, else the config's `data.timeframe`. The data never changes it silently: bars
    spaced differently raise (`check_spacing`, `SignalStepper.update`), because the higher-timeframe strategy
    would otherwise decide differently in research and in live trading.
    """
    tf = timeframe or config.data.timeframe
    timeframe_to_ms(tf)  # a clear error for an unknown timeframe string
    return tf


def check_spacing(ts: np.ndarray, timeframe: str, what: str = "the bars") -> None:
    """Raise when the most common spacing of `ts` is not `timeframe` (gaps are fine, another grid is not)."""
    spacing = infer_timeframe(ts)
    if spacing is not None and timeframe_to_ms(spacing) != timeframe_to_ms(timeframe):
        raise ValueError(f"{what} are spaced {spacing} but the timeframe is {timeframe}: pass "
                         f"timeframe={spacing!r} or set data.timeframe: {spacing} in the config")


def active_strategies(config: Config) -> list[str]:
    """The registered strategies this config enables, in `registered()` order (what a run names as having run)."""
    return [name for name, spec in _REGISTRY.items() if spec.enabled(config)]


def signal_columns(names: tuple[str, ...]) -> list[str]:
    cols = ["action", "confidence", "stop_loss", "take_profit", "voters"]
    for n in names:
        cols += [f"{n}_action", f"{n}_confidence"]
    return cols


def compute_signals(ohlcv: pd.DataFrame, config: Config | None = None, timeframe: str | None = None,
                    with_features: bool = False) -> pd.DataFrame:
    """Per-bar combined signal and per-strategy votes over history, in one compiled pass.

    Columns: `action` (int8 −1/0/+1), `confidence`, `stop_loss`, `take_profit` (NaN on hold), `voters`
    (bitmask over the registered strategies, in `registered()` order), then `<name>_action` and
    `<name>_confidence` per strategy (plus the 15 features when `with_features`).

    `config=None` means the built-in defaults (`Config()`), as `compute_features(params=None)` does: neither
    reads config files or the environment, so a notebook cell gives the same numbers on every machine; pass
    `load_config()` to apply them. The base timeframe follows `base_timeframe` (the `timeframe` argument, else
    `data.timeframe`), exactly as `SignalStepper`; bars spaced otherwise raise a `ValueError` saying what to pass.
    """
    cfg = config or Config()
    tf = base_timeframe(cfg, timeframe)
    ts = timestamps_ms(ohlcv)
    check_spacing(ts, tf)
    pipe = Pipeline.build(cfg, timeframe_to_ms(tf))
    fst, sst = pipe.new_state()
    arrays = [np.ascontiguousarray(ohlcv[c].to_numpy(dtype=np.float64)) for c in ("open", "high", "low", "close", "volume")]
    feats, votes, outs = pipe.module.pipeline_batch(fst, pipe.fp, sst, pipe.sp, pipe.soff, pipe.poff, pipe.weights,
                                                    pipe.enabled, pipe.cp, ts, *arrays)
    data: dict[str, Any] = {
        "action": outs[:, cb.OUT_ACTION].astype(np.int8),
        "confidence": outs[:, cb.OUT_CONF],
        "stop_loss": outs[:, cb.OUT_SL],
        "take_profit": outs[:, cb.OUT_TP],
        "voters": outs[:, cb.OUT_VOTERS].astype(np.int64),
    }
    for i, name in enumerate(pipe.names):
        data[f"{name}_action"] = votes[:, i, 0].astype(np.int8)
        data[f"{name}_confidence"] = votes[:, i, 1]
    frame = pd.DataFrame(data, index=ohlcv.index)
    if with_features:
        frame = pd.concat([frame, pd.DataFrame(feats, index=ohlcv.index, columns=list(FEATURE_ORDER))], axis=1)
    return frame


@dataclass
class SignalResult:
    """One bar's decision from `SignalStepper.update`."""

    action: int
    confidence: float
    stop_loss: float
    take_profit: float
    voters: int
    features: np.ndarray
    votes: np.ndarray  # (strategies, 4): action, confidence, stop-loss, take-profit


class SignalStepper:
    """Features, strategies and combiner for one closed bar at a time (the live adapter's decision step).

    Config and timeframe follow the same rules as `compute_signals` (`config=None` → `Config()`;
    `base_timeframe`). Each bar must open on the timeframe's grid, after the previous one, a whole number of
    bars later; three gaps of the same length in a row mean the bars come on another timeframe. Any of these
    raises a `ValueError` before the bar changes the state, instead of deciding differently from the backtest.
    """

    GAP_RUN_LIMIT = 3  # shipped data never has two gaps in a row; a coarser feed has one at every bar

    def __init__(self, config: Config | None = None, timeframe: str | None = None):
        cfg = config or Config()
        self.config = cfg
        self.timeframe = base_timeframe(cfg, timeframe)
        self.bar_ms = timeframe_to_ms(self.timeframe)
        self.pipeline = Pipeline.build(cfg, self.bar_ms)
        self._last_ts = -1
        self._gap = 0
        self._gap_run = 0
        self._fst, self._sst = self.pipeline.new_state()
        self._foff = fk.feature_layout(self.pipeline.fp)
        self._bar = np.empty(5)
        self._feat = np.empty(fk.N_FEATURES)
        self._votes = np.empty((len(self.pipeline.names), 4))
        self._out = np.empty(cb.N_OUT)
        self.warmup = max(self.pipeline.warmup, int(fk.features_warmup(self.pipeline.fp).max()))

    @property
    def names(self) -> tuple[str, ...]:
        return self.pipeline.names

    @property
    def bars_seen(self) -> int:
        """Bars fed so far (kept in the feature state, so it survives `get_state`/`set_state`)."""
        return int(self._fst[fk.FS.bars])

    @property
    def ready(self) -> bool:
        """True once every enabled strategy and feature is past its warm-up."""
        return self.bars_seen > self.warmup

    def update(self, timestamp_ms: int, open: float, high: float, low: float, close: float, volume: float) -> SignalResult:
        """Decide at the close of the bar that opened at `timestamp_ms` (UTC ms)."""
        self.step(timestamp_ms, open, high, low, close, volume)
        out = self._out
        return SignalResult(int(out[cb.OUT_ACTION]), float(out[cb.OUT_CONF]), float(out[cb.OUT_SL]),
                            float(out[cb.OUT_TP]), int(out[cb.OUT_VOTERS]), self._feat.copy(), self._votes.copy())

    def step(self, timestamp_ms: int, open: float, high: float, low: float, close: float, volume: float) -> np.ndarray:
        """Like `update` without building a result object: returns the internal output vector (a view)."""
        self._check_time(int(timestamp_ms))
        bar = self._bar
        bar[0], bar[1], bar[2], bar[3], bar[4] = open, high, low, close, volume
        p = self.pipeline
        p.module.pipeline_step(self._fst, p.fp, self._foff, self._sst, p.sp, p.soff, p.poff, p.weights, p.enabled,
                               p.cp, int(timestamp_ms), bar, self._feat, self._votes, self._out)
        return self._out

    def _check_time(self, ts: int) -> None:
        ms, last = self.bar_ms, self._last_ts
        if ts % ms:
            raise ValueError(f"bar at {ms_to_iso(ts)} is not on the {self.timeframe} grid: this stepper's timeframe "
                             f"is {self.timeframe}; build it with the timeframe of the feed")
        if last >= 0:
            delta = ts - last
            if delta <= 0:
                raise ValueError(f"bar at {ms_to_iso(ts)} does not follow the previous bar ({ms_to_iso(last)}): "
                                 "closed bars must arrive once each, in order")
            if delta > ms:
                self._gap_run = self._gap_run + 1 if delta == self._gap else 1
                self._gap = delta
                if self._gap_run >= self.GAP_RUN_LIMIT:
                    raise ValueError(f"the last {self._gap_run} bars are {delta // 60_000} minutes apart but this "
                                     f"stepper's timeframe is {self.timeframe}: build it with the feed's timeframe")
            else:
                self._gap_run = 0
        self._last_ts = ts

    def get_state(self) -> dict[str, np.ndarray]:
        """Everything `set_state` needs, as plain arrays (the feature layout digest and last bar time included)."""
        return {
            "layout": np.array(LAYOUT_DIGEST),
            "last_timestamp": np.array(self._last_ts, dtype=np.int64),
            "strategies": np.array(self.pipeline.names),
            "feature_params": self.pipeline.fp.copy(),
            "strategy_params": self.pipeline.sp.copy(),
            "feature_state": self._fst.copy(),
            "strategy_state": self._sst.copy(),
        }

    def set_state(self, saved: dict[str, np.ndarray]) -> None:
        check_layout(saved, "signal state")
        names = tuple(str(n) for n in np.asarray(saved["strategies"]).tolist())
        if names != self.pipeline.names:
            raise ValueError(f"saved signal state is for strategies {names}, this stepper runs {self.pipeline.names}")
        for key, mine in (("feature_params", self.pipeline.fp), ("strategy_params", self.pipeline.sp)):
            if not np.array_equal(np.asarray(saved[key], dtype=np.float64), mine):
                raise ValueError(f"saved signal state was made with other {key.replace('_', ' ')}; rebuild it from history")
        fst = np.asarray(saved["feature_state"], dtype=np.float64)
        sst = np.asarray(saved["strategy_state"], dtype=np.float64)
        if fst.shape != self._fst.shape or sst.shape != self._sst.shape:
            raise ValueError("saved signal state has the wrong size; rebuild it from history")
        self._fst, self._sst = fst.copy(), sst.copy()
        self._last_ts = int(np.asarray(saved.get("last_timestamp", -1)))
        self._gap = self._gap_run = 0
