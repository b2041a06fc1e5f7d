"""One closed bar through the shared kernels: features → strategies → combiner → ML gate → risk → execution.

The same `SignalStepper` pipeline, `execution_params` packing, `execution_step` kernel and ML gate
functions as `research.backtest.run`, called one bar at a time in the same order, so a replay produces the
backtest's trades by construction (the parity tests prove it on every shipped data set).
"""

from __future__ import annotations

import numpy as np

from cryptobot.config import Config
from cryptobot.data.frames import timeframe_to_ms
from cryptobot.execution import LAYOUT_DIGEST, REASONS, check_layout, event_records, execution_params
from cryptobot.kernels import execution as ex
from cryptobot.live.state import BarRecord, KernelStates
from cryptobot.ml.bundle import Bundle
from cryptobot.ml.gate import gate_probabilities
from cryptobot.strategies import SignalStepper

Bar = tuple[int, float, float, float, float, float]  # open time (UTC ms), open, high, low, close, volume


class Engine:
    """Signal stepper + execution kernel state for one bot; `states()`/`restore()` persist and recover them."""

    def __init__(self, cfg: Config, timeframe: str, bundle: Bundle | None = None):
        self.stepper = SignalStepper(cfg, timeframe)
        self.bundle = bundle
        self.bar_ms = timeframe_to_ms(timeframe)
        self.params = execution_params(cfg, self.bar_ms, gated=bundle is not None, bundle=bundle)
        self.exec_state = ex.execution_init(self.params)
        self._ev = np.empty(ex.EV_MAX, dtype=ex.EVENT_DTYPE)  # the kernel writes it through a float64 view
        self._ev_floats = self._ev.view(np.float64)
        self.seq = 0  # the kernel's bar index of the next bar
        self.last_ts: int | None = None

    @property
    def warmup(self) -> int:
        return int(self.stepper.warmup)

    @property
    def pipeline_name(self) -> str:
        return str(self.stepper.pipeline.module.__name__)

    def states(self) -> KernelStates:
        s = self.stepper.get_state()
        assert self.last_ts is not None
        return KernelStates(self.seq - 1, self.last_ts, s["feature_state"], s["strategy_state"], self.exec_state.copy(),
                            LAYOUT_DIGEST, str(s["layout"]), str(s["strategy_layout"]))

    def restore(self, saved: KernelStates) -> None:
        current = self.stepper.get_state()
        self.stepper.set_state({**current, "feature_state": saved.features, "strategy_state": saved.strategies,
                                "layout": np.array(saved.feature_layout),
                                "strategy_layout": np.array(saved.strategy_layout),
                                "last_timestamp": np.array(saved.ts, dtype=np.int64)})
        check_layout(saved.execution_layout)
        if saved.execution.shape != self.exec_state.shape:
            raise ValueError("saved execution state has the wrong size for this config")
        self.exec_state = saved.execution.copy()
        self.seq = saved.seq + 1
        self.last_ts = saved.ts

    def warm(self, bar: Bar) -> BarRecord:
        """A history bar before trading starts: strategies learn it, the execution kernel does not see it."""
        ts, o, h, lo, c, v = bar
        res = self.stepper.update(ts, o, h, lo, c, v)
        rec = BarRecord(self.seq, ts, (o, h, lo, c, v), True, res.action, res.confidence, res.stop_loss,
                        res.take_profit, res.voters, features=res.features, votes=res.votes,
                        equity=float(self.exec_state[ex.S_EQUITY]), position=float(self.exec_state[ex.S_POS]))
        self.seq += 1
        self.last_ts = ts
        return rec

    def step(self, bar: Bar, halted: bool = False) -> BarRecord:
        """Decide at this bar's close; `halted` (manual kill switch) withholds the signal from execution."""
        ts, o, h, lo, c, v = bar
        res = self.stepper.update(ts, o, h, lo, c, v)
        ml_p = float(gate_probabilities(self.bundle, res.features[None, :])[0]) if self.bundle is not None else np.nan
        action = 0.0 if halted else float(res.action)
        st = self.exec_state
        n = ex.execution_step(st, self.params, self.seq, ts, o, h, lo, c, action, res.stop_loss, res.take_profit,
                              float(res.voters), ml_p, self._ev_floats)
        events = self._ev_floats.reshape(ex.EV_MAX, ex.EV_WIDTH)[:n].copy()  # rows, as the state stores them
        orders: list[tuple[str, int, float, float, str]] = []
        if st[ex.S_PEND_EXIT] > 0.0 and st[ex.S_POS] != 0.0:
            orders.append(("exit", -1 if st[ex.S_POS] > 0 else 1, abs(float(st[ex.S_POS])), np.nan,
                           REASONS[int(st[ex.S_PEND_EXIT])]))
        if st[ex.S_PEND_SIDE] != 0.0:
            limit = float(st[ex.S_PEND_LIMIT]) if self.params[ex.P_POST_ONLY] > 0.0 else np.nan
            orders.append(("entry", int(st[ex.S_PEND_SIDE]), float(st[ex.S_PEND_AMOUNT]), limit, "signal"))
        rec = BarRecord(self.seq, ts, (o, h, lo, c, v), False, res.action, res.confidence, res.stop_loss,
                        res.take_profit, res.voters, ml_p, _verdict(events, orders, res.action, halted),
                        float(st[ex.S_EQUITY]), float(st[ex.S_POS]), res.features, res.votes, events, tuple(orders))
        self.seq += 1
        self.last_ts = ts
        return rec

    def resume(self) -> None:
        """Operator `resume`: clear the drawdown halt and measure drawdown from the current equity."""
        self.exec_state[ex.S_HALTED] = 0.0
        self.exec_state[ex.S_PEAK] = self.exec_state[ex.S_EQUITY]


def _verdict(events: np.ndarray, orders: list[tuple[str, int, float, float, str]], action: int, halted: bool) -> str:
    """What the bar did, for the decision log: fills, skips with their reason, orders left for the next open."""
    parts = []
    for e in event_records(events):
        kind = {ex.KIND.entry: "filled_entry", ex.KIND.exit: "filled_exit", ex.KIND.skip: "skip"}[int(e["kind"])]
        side = "long" if e["side"] > 0 else "short"
        parts.append(f"{kind}:{side}:{REASONS[int(e['reason'])]}")
    for order_kind, order_side, _, _, reason in orders:
        parts.append(f"order_{order_kind}:{'long' if order_side > 0 else 'short'}:{reason}")
    if halted and action != 0:
        parts.append("manual_halt")
    return ";".join(parts) or "hold"
