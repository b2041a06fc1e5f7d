"""The signal pipeline bound to a config, and its two drivers: `compute_signals` (history) and `SignalStepper` (live).

`Pipeline.build` packs the registered strategies' parameters for one config and base timeframe and picks
the generated modules (`codegen`); `Pipeline.batch` runs them over history with every state in locals,
`Pipeline.step` one closed bar at a time over the state arrays — the same per-bar code, so batch = step
is structural (and tested bit for bit). The strategies run in the order: those with a scalar core (the
built-ins), then those registered with an array step kernel (`specs()`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from cryptobot.config import Config
from cryptobot.data.frames import ms_to_iso, ohlcv_arrays, timeframe_to_ms, timestamps_ms
from cryptobot.data.validate import infer_timeframe
from cryptobot.features import FEATURE_ORDER, LAYOUT_DIGEST, check_layout, feature_params, require_layout
from cryptobot.kernels import combiner as cb
from cryptobot.kernels import features as fk
from cryptobot.kernels.inputs import frozen
from cryptobot.prefault import populated
from cryptobot.strategies.codegen import custom_module, pipeline_module
from cryptobot.strategies.registry import StrategySpec, specs

VOTE_WIDTH = 4  # action, confidence, stop-loss, take-profit


@dataclass
class PipelineState:
    """Everything one bar changes: the feature and strategy state arrays and the last bar's outputs."""

    features: np.ndarray  # feature kernel state
    strategies: np.ndarray  # the strategies' states, one slice each (`Pipeline.state_offsets`)
    feature_layout: np.ndarray  # buffer offsets of the feature state (`feature_layout`)
    bar: np.ndarray  # (open, high, low, close, volume) of the last bar
    feature_values: np.ndarray  # its 15 features in FEATURE_ORDER
    votes: np.ndarray  # (strategies, 4): action, confidence, stop-loss, take-profit
    decision: np.ndarray  # (N_OUT,): action, confidence, stop-loss, take-profit, voters


@dataclass(frozen=True)
class SignalArrays:
    """`Pipeline.batch` output: per bar the decision, each strategy's vote and (on request) the features.

    Column-major (one contiguous row per output column, bars along the last axis), so a frame wraps each
    column without copying it."""

    decisions: np.ndarray  # (N_OUT, n): action, confidence, stop-loss, take-profit, voters
    votes: np.ndarray  # (strategies, 2, n): action, confidence
    features: np.ndarray | None  # (15, n) in FEATURE_ORDER


@dataclass(frozen=True)
class Pipeline:
    """The registered strategies bound to one config and base timeframe: parameters, weights, compiled modules."""

    names: tuple[str, ...]  # `registered()`: the strategies with a core, then the custom ones
    module: ModuleType  # the generated fused pipeline (`codegen`), keyed on the strategies and their code
    custom: ModuleType | None  # the custom strategies' module, run after `module` on its features and votes
    n_fused: int  # names[:n_fused] run in `module`
    feature_params: np.ndarray
    strategy_params: np.ndarray  # all strategies' parameters; strategy i's = [param_offsets[i]:param_offsets[i + 1]]
    param_offsets: np.ndarray
    state_offsets: np.ndarray  # strategy i's state = strategies[state_offsets[i]:state_offsets[i + 1]]
    initial_state: np.ndarray  # the strategies' initial state array
    weights: np.ndarray
    enabled: np.ndarray
    combiner_params: np.ndarray  # method, min_conflict_threshold, min_score (`cryptobot.kernels.combiner`)
    warmup: int  # bars before every enabled strategy can signal
    base_ms: int
    feature_groups: tuple[bool, ...]  # the feature blocks the enabled strategies read (`fk.groups_for`)
    layout: str  # digest of the strategies' declared layouts (saved with every signal state)
    fused_args: tuple[np.ndarray, ...] = field(init=False, repr=False)  # offsets, weights, enabled of names[:n_fused]

    @classmethod
    def build(cls, config: Config, base_ms: int) -> Pipeline:
        registered = specs()
        fused = tuple(s for s in registered if s.core is not None)
        customs = registered[len(fused):]
        params = [s.params(config, base_ms) for s in registered]
        for s, p in zip(registered, params, strict=True):
            if s.layout is not None and p.size != s.layout.n_params:
                raise ValueError(f"strategy {s.name!r} packs {p.size} parameters, its declaration has {s.layout.n_params}")
        states = [s.new_state(p) for s, p in zip(registered, params, strict=True)]
        enabled = np.array([s.enabled(config) for s in registered], dtype=np.bool_)
        comb = config.strategies.combiner
        method = cb.METHOD_WEIGHTED_SUM if comb.method == "weighted_sum" else cb.METHOD_AVERAGE_CONFIDENCE
        warm = [s.warmup(config, base_ms) for s, on in zip(registered, enabled, strict=True) if on]
        shapes = repr([s.shape for s in registered])
        return cls(
            names=tuple(s.name for s in registered),
            module=pipeline_module(fused),
            custom=custom_module(len(fused), customs) if customs else None,
            n_fused=len(fused),
            feature_params=feature_params(config.features),
            strategy_params=np.concatenate(params) if params else np.zeros(0),
            param_offsets=np.cumsum([0, *[p.size for p in params]]).astype(np.int64),
            state_offsets=np.cumsum([0, *[st.size for st in states]]).astype(np.int64),
            initial_state=np.concatenate(states) if states else np.zeros(0),
            weights=np.array([s.weight(config) for s in registered], dtype=np.float64),
            enabled=enabled,
            combiner_params=np.array([method, comb.min_conflict_threshold, comb.min_score], dtype=np.float64),
            warmup=max(warm, default=0),
            base_ms=base_ms,
            feature_groups=read_groups([s for s, on in zip(registered, enabled, strict=True) if on]),
            layout=hashlib.sha256(shapes.encode()).hexdigest()[:16],
        )

    def __post_init__(self) -> None:
        kf = self.n_fused  # sliced once here, not on every live step
        object.__setattr__(self, "fused_args", (self.state_offsets[: kf + 1], self.param_offsets[: kf + 1],
                                                self.weights[:kf], self.enabled[:kf]))

    def params_of(self, name: str) -> np.ndarray:
        """The parameter vector of one strategy (a copy)."""
        i = self.names.index(name)
        return self.strategy_params[self.param_offsets[i]: self.param_offsets[i + 1]].copy()

    def new_state(self) -> PipelineState:
        k = len(self.names)
        return PipelineState(fk.features_init(self.feature_params), self.initial_state.copy(),
                             fk.feature_layout(self.feature_params), np.empty(5), np.empty(fk.N_FEATURES),
                             np.empty((k, VOTE_WIDTH)), np.empty(cb.N_OUT))

    def batch(self, ts: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray,
              *, features: bool = False, state: PipelineState | None = None) -> SignalArrays:
        """All bars in one compiled pass, from `state` (advanced in place) or a fresh one; outputs allocated here.

        All 15 features are computed when asked for, or when `state` is passed (it must come out complete,
        e.g. for the live bot); otherwise a fresh state's feature core runs only the blocks the enabled
        strategies read (`feature_groups`), which changes no decision."""
        need = fk.ALL_GROUPS if features or state is not None else self.feature_groups
        st = state or self.new_state()
        n = c.shape[0]
        k, kf = len(self.names), self.n_fused
        decisions = np.empty((cb.N_OUT, n))
        votes = np.zeros((k, 2, n))  # a disabled strategy's columns stay these zeros: pages never touched
        feats = np.empty((fk.N_FEATURES, n if features or self.custom else 0))
        arrays = [frozen(x) for x in (o, h, lo, c, v)]  # read-only: one compiled signature whoever calls
        ts = frozen(ts, np.int64)
        fused = votes if self.custom is None else np.empty((kf, VOTE_WIDTH, n))
        written = list(fused) if self.custom is not None else [votes[i] for i in np.flatnonzero(self.enabled)]
        columns = [col for x in (feats, decisions, *written) if x.shape[-1] == n for col in x.reshape(-1, n)]
        with populated(columns):
            self.module.pipeline_batch_into(st.features, self.feature_params, st.strategies, self.strategy_params,
                                            *self.fused_args, self.combiner_params, need, ts, *arrays,
                                            feats, decisions, fused)
        if self.custom is not None:
            self.custom.custom_batch_into(st.strategies, self.strategy_params, self.state_offsets, self.param_offsets,
                                          self.weights, self.enabled, self.combiner_params, ts, *arrays, feats,
                                          fused, decisions, votes)
        return SignalArrays(decisions, votes, feats if features else None)

    def step(self, state: PipelineState, ts: int, o: float, h: float, lo: float, c: float, v: float) -> np.ndarray:
        """One closed bar: advances `state`, fills its feature values and votes, returns its decision vector."""
        bar = state.bar
        bar[0], bar[1], bar[2], bar[3], bar[4] = o, h, lo, c, v
        self.module.pipeline_step(state.features, self.feature_params, state.feature_layout, state.strategies,
                                  self.strategy_params, *self.fused_args, self.combiner_params, ts, bar,
                                  state.feature_values, state.votes, state.decision)
        if self.custom is not None:
            self.custom.custom_step(state.strategies, self.strategy_params, self.state_offsets, self.param_offsets,
                                    self.weights, self.enabled, self.combiner_params, ts, bar, state.feature_values,
                                    state.votes, state.decision)
        return state.decision


def read_groups(strategies: list[StrategySpec]) -> tuple[bool, ...]:
    """The feature blocks these strategies read, from their declarations: all of them for a strategy that
    does not declare its features, and for a custom (array step) strategy, which is handed all 15."""
    if any(s.core is None or s.layout is None or s.layout.features is None for s in strategies):
        return fk.ALL_GROUPS
    read = tuple(sorted({f for s in strategies for f in s.layout.features}))  # type: ignore[union-attr]
    return fk.groups_for(read)


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
    res = pipe.batch(ts, *ohlcv_arrays(ohlcv), features=with_features)
    out = res.decisions
    data: dict[str, Any] = {
        "action": out[cb.OUT_ACTION].astype(np.int8),
        "confidence": out[cb.OUT_CONF],
        "stop_loss": out[cb.OUT_SL],
        "take_profit": out[cb.OUT_TP],
        "voters": out[cb.OUT_VOTERS].astype(np.int64),
    }
    for i, name in enumerate(pipe.names):  # a disabled strategy's zero columns are not read (never mapped)
        data[f"{name}_action"] = res.votes[i, 0].astype(np.int8) if pipe.enabled[i] else np.zeros(len(ts), np.int8)
        data[f"{name}_confidence"] = res.votes[i, 1]
    if res.features is not None:
        data.update(zip(FEATURE_ORDER, res.features, strict=True))
    return pd.DataFrame(data, index=ohlcv.index, copy=False)


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
        self._state = self.pipeline.new_state()
        self.warmup = max(self.pipeline.warmup, int(fk.features_warmup(self.pipeline.feature_params).max()))

    @property
    def names(self) -> tuple[str, ...]:
        return self.pipeline.names

    @property
    def bars_seen(self) -> int:
        """Bars fed so far (kept in the feature state, so it survives `get_state`/`set_state`)."""
        return int(self._state.features[fk.FS.bars])

    @property
    def ready(self) -> bool:
        """True once every enabled strategy and feature is past its warm-up."""
        return self.bars_seen > self.warmup

    def update(self, timestamp_ms: int, open: float, high: float, low: float, close: float, volume: float) -> SignalResult:
        """Decide at the close of the bar that opened at `timestamp_ms` (UTC ms)."""
        out = self.step(timestamp_ms, open, high, low, close, volume)
        return SignalResult(int(out[cb.OUT_ACTION]), float(out[cb.OUT_CONF]), float(out[cb.OUT_SL]),
                            float(out[cb.OUT_TP]), int(out[cb.OUT_VOTERS]), self._state.feature_values.copy(),
                            self._state.votes.copy())

    def step(self, timestamp_ms: int, open: float, high: float, low: float, close: float, volume: float) -> np.ndarray:
        """Like `update` without building a result object: returns the internal output vector (a view)."""
        self._check_time(int(timestamp_ms))
        return self.pipeline.step(self._state, int(timestamp_ms), open, high, low, close, volume)

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
        """Everything `set_state` needs, as plain arrays (the feature and strategy layout digests, last bar time)."""
        return {
            "layout": np.array(LAYOUT_DIGEST),
            "strategy_layout": np.array(self.pipeline.layout),
            "last_timestamp": np.array(self._last_ts, dtype=np.int64),
            "strategies": np.array(self.pipeline.names),
            "feature_params": self.pipeline.feature_params.copy(),
            "strategy_params": self.pipeline.strategy_params.copy(),
            "feature_state": self._state.features.copy(),
            "strategy_state": self._state.strategies.copy(),
        }

    def set_state(self, saved: dict[str, np.ndarray]) -> None:
        check_layout(saved, "signal state")
        require_layout(str(np.asarray(saved.get("strategy_layout", ""))), self.pipeline.layout, "signal state",
                       "strategy layout")
        names = tuple(str(n) for n in np.asarray(saved["strategies"]).tolist())
        if names != self.pipeline.names:
            raise ValueError(f"saved signal state is for strategies {names}, this stepper runs {self.pipeline.names}")
        for key, mine in (("feature_params", self.pipeline.feature_params),
                          ("strategy_params", self.pipeline.strategy_params)):
            if not np.array_equal(np.asarray(saved[key], dtype=np.float64), mine):
                raise ValueError(f"saved signal state was made with other {key.replace('_', ' ')}; rebuild it from history")
        fst = np.asarray(saved["feature_state"], dtype=np.float64)
        sst = np.asarray(saved["strategy_state"], dtype=np.float64)
        if fst.shape != self._state.features.shape or sst.shape != self._state.strategies.shape:
            raise ValueError("saved signal state has the wrong size; rebuild it from history")
        self._state.features, self._state.strategies = fst.copy(), sst.copy()
        self._last_ts = int(np.asarray(saved.get("last_timestamp", -1)))
        self._gap = self._gap_run = 0
