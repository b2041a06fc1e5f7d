"""Live vs backtest: replay the bars a paper/live session saw through the backtester and diff what it did.

The session's state (`cryptobot/live/state.py`, read only) holds every bar it processed, its decision and
the kernel's fills. `reconcile` rebuilds those bars as a frame, backtests them with `research.backtest.run`
(the session's history warm-up bars warm the strategies only, as in the bot), and compares decision by
decision and trade by trade. Each difference gets one cause:

- signal drift: the strategies or the model decided otherwise on the same bar (action or ML probability);
- slippage: a matched trade filled at another price;
- latency: a matched trade filled on another bar;
- partial fill: a matched trade of another size;
- fees: a matched trade paid other fees (or interest);
- missed fill: a backtest trade the session does not have;
- manual intervention: the operator's halt withheld a signal, or a session trade the backtest never made.

The backtest closes an open position at the end of its data (`end_of_data`); the session keeps it open,
so that trade is reported as open, not as a difference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cryptobot.config import Config, load_config, parse_set_options
from cryptobot.live.state import StateStore, trading_config_hash

CAUSES = ("signal drift", "slippage", "latency", "partial fill", "fees", "missed fill", "manual intervention")
PRICE_TOL = 1e-9  # relative; the kernels are deterministic, so equal inputs give bit-equal outputs


class ReconcileError(ValueError):
    """The session cannot be replayed as it ran (other config, other bundle, no bars)."""


@dataclass
class Reconciliation:
    """What differs between a session and the backtest of its bars; `matches` when nothing does."""

    session_trades: pd.DataFrame
    backtest_trades: pd.DataFrame
    decisions: pd.DataFrame  # one row per bar where the decision differs
    trades: pd.DataFrame  # one row per trade that differs, with its cause and P&L impact
    equity: pd.DataFrame  # per bar: session, backtest
    open_at_end: pd.DataFrame  # backtest trades closed only by the end of the data
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def matches(self) -> bool:
        return self.decisions.empty and self.trades.empty

    def attribution(self) -> pd.DataFrame:
        """Per cause: how many differences and their P&L impact (session − backtest, quote currency)."""
        rows = [{"cause": c,
                 "decisions": int((self.decisions["cause"] == c).sum()),
                 "trades": int((self.trades["cause"] == c).sum()),
                 "pnl_impact": float(self.trades.loc[self.trades["cause"] == c, "pnl_impact"].sum())}
                for c in CAUSES]
        frame = pd.DataFrame(rows)
        return frame[(frame["decisions"] > 0) | (frame["trades"] > 0)].reset_index(drop=True)

    def summary(self) -> str:
        n = len(self.session_trades)
        if self.matches:
            return (f"The session matches its backtest exactly: {len(self.equity)} bars, every decision, "
                    f"{n} closed trade(s), fill prices, fees and P&L identical.")
        a = self.attribution()
        parts = [f"{c}: {int(d) + int(t)}" for c, d, t in zip(a["cause"], a["decisions"], a["trades"], strict=True)]
        return (f"The session differs from its backtest in {len(self.decisions)} decision(s) and "
                f"{len(self.trades)} trade(s) ({'; '.join(parts)}); P&L gap "
                f"{float(self.trades['pnl_impact'].sum()):+,.2f}.")


def session_config(config_files: list[str] | None = None, overrides: list[str] | None = None) -> Config:
    return load_config(config_files or [], overrides=parse_set_options(overrides or []))


def read_session(state_dir: str | Path) -> tuple[dict[str, str], pd.DataFrame, pd.DataFrame]:
    """(identity, one row per processed bar, closed trades) of a session; read only."""
    store = StateStore(state_dir, readonly=True)
    try:
        meta, bars, trades = store.meta(), store.decisions(), store.trades()
    finally:
        store.close()
    if bars.empty:
        raise ReconcileError(f"{state_dir}: the session processed no bars yet; nothing to reconcile")
    return meta, bars, trades


def check_config(state_dir: str | Path, meta: dict[str, str], cfg: Config) -> None:
    """The replay must use the trading config the session ran with (its hash is in the state's identity)."""
    if meta.get("config_hash") != trading_config_hash(cfg):
        raise ReconcileError(
            f"{state_dir}: the session ran with another trading config (config_hash "
            f"{meta.get('config_hash', '')[:16]}…, this one {trading_config_hash(cfg)[:16]}…); pass the same "
            "--config files and --set overrides the session was started with")


def session_ohlcv(bars: pd.DataFrame) -> pd.DataFrame:
    """The bars the session saw, as the OHLCV frame the backtester takes."""
    index = pd.DatetimeIndex(pd.to_datetime(bars["ts"].to_numpy(np.int64), unit="ms", utc=True), name="time")
    return bars[["open", "high", "low", "close", "volume"]].set_axis(index.as_unit("ms")).astype(np.float64)


def reconcile(state_dir: str | Path, cfg: Config) -> Reconciliation:
    """Replay the session in `state_dir` through the backtester with `cfg` (the session's config) and diff."""
    from cryptobot.features import FEATURE_ORDER
    from cryptobot.ml import load_bundle
    from cryptobot.ml.gate import gate_probabilities
    from cryptobot.strategies import compute_signals
    from research.backtest import run as backtest

    meta, bars, session_trades = read_session(state_dir)
    check_config(state_dir, meta, cfg)
    ohlcv = session_ohlcv(bars)
    index = pd.DatetimeIndex(ohlcv.index)
    warm = int(bars["warmup"].sum())
    if warm and not (bars["warmup"].to_numpy()[:warm] == 1).all():
        raise ReconcileError(f"{state_dir}: warm-up bars are not all before the traded ones; state is inconsistent")
    if warm >= len(bars):
        raise ReconcileError(f"{state_dir}: the session has only warm-up bars; nothing was traded yet")
    gate = None
    if cfg.ml.enabled:
        bundle = load_bundle(cfg.ml.bundle_dir)
        if bundle.bundle_id != meta.get("bundle_id", ""):
            raise ReconcileError(f"{state_dir}: the session used ML bundle {meta.get('bundle_id', '')[:16]!r}, "
                                 f"{cfg.ml.bundle_dir} is {bundle.bundle_id[:16]!r}; point ml.bundle_dir at the "
                                 "bundle the session ran with")
        # the probabilities the backtest gates with (it loads the same bundle), to compare bar by bar
        feats = compute_signals(ohlcv, cfg, timeframe=meta.get("timeframe") or None,
                                with_features=True)[list(FEATURE_ORDER)].to_numpy()
        gate = gate_probabilities(bundle, feats)
    result = backtest(ohlcv, cfg, trade_from=warm)
    bt = result.trades
    at_end = bt[bt["exit_reason"] == "end_of_data"].reset_index(drop=True)
    bt = bt[bt["exit_reason"] != "end_of_data"].reset_index(drop=True)
    decisions = _decision_diffs(bars, result.signals, gate, index, warm)
    halted = set(index[bars["verdict"].str.contains("manual_halt", regex=False).to_numpy()])
    trades = _trade_diffs(session_trades, bt, halted, set(decisions["time"]) if len(decisions) else set())
    equity = pd.DataFrame({"session": bars["equity"].to_numpy(), "backtest": result.equity.to_numpy()}, index=index)
    if len(at_end):  # the backtest's last bar is marked after its end_of_data close
        equity = equity.iloc[:-1]
    return Reconciliation(session_trades, bt, decisions, trades, equity, at_end, meta)


def _same(a: Any, b: Any) -> bool:
    a, b = float(a), float(b)
    if np.isnan(a) and np.isnan(b):
        return True
    return bool(abs(a - b) <= PRICE_TOL * max(1.0, abs(a), abs(b)))


def _decision_diffs(bars: pd.DataFrame, signals: pd.DataFrame, gate: np.ndarray | None, index: pd.DatetimeIndex,
                    warm: int) -> pd.DataFrame:
    """Bars (after the warm-up) where the session's signal or model output is not the backtest's."""
    cols = ["time", "bar", "session_action", "backtest_action", "session_ml_p", "backtest_ml_p", "session_verdict",
            "cause"]
    rows = []
    session_action = bars["action"].to_numpy(np.float64)
    bt_action = signals["action"].to_numpy(np.float64)
    session_p = bars["ml_p"].to_numpy(np.float64)
    bt_p = np.full(len(bars), np.nan) if gate is None else gate
    for i in range(warm, len(bars)):
        verdict = str(bars["verdict"].iat[i])
        drift = not (_same(session_action[i], bt_action[i]) and _same(session_p[i], bt_p[i]))
        if drift or "manual_halt" in verdict:
            rows.append(dict(zip(cols, (index[i], i, session_action[i], bt_action[i], session_p[i], bt_p[i], verdict,
                                        "signal drift" if drift else "manual intervention"), strict=True)))
    return pd.DataFrame(rows, columns=cols)


def _trade_diffs(session: pd.DataFrame, bt: pd.DataFrame, halted: set[pd.Timestamp],
                 drifted: set[pd.Timestamp]) -> pd.DataFrame:
    """Pair trades by side and entry time (else the nearest unpaired entry of that side) and diff them."""
    cols = ["entry_time", "side", "field", "session", "backtest", "difference", "cause", "pnl_impact"]
    rows: list[dict[str, Any]] = []
    unpaired = set(range(len(session)))
    pairs: list[tuple[int | None, int | None]] = []
    s_side: list[str] = session["side"].tolist()
    s_time: list[pd.Timestamp] = session["entry_time"].tolist()
    b_side: list[str] = bt["side"].tolist()
    b_time: list[pd.Timestamp] = bt["entry_time"].tolist()
    for j in range(len(bt)):
        same = [i for i in unpaired if s_side[i] == b_side[j] and s_time[i] == b_time[j]]
        if not same:  # a late fill: the earliest unpaired session entry of the side before the next backtest entry
            nxt = b_time[j + 1] if j + 1 < len(bt) else pd.Timestamp.max.tz_localize("UTC")
            same = sorted((i for i in unpaired if s_side[i] == b_side[j] and b_time[j] <= s_time[i] < nxt),
                          key=lambda i: s_time[i])
        if same:
            unpaired.discard(same[0])
            pairs.append((same[0], j))
        else:
            pairs.append((None, j))
    pairs.extend((i, None) for i in sorted(unpaired))
    for si, bj in pairs:
        if si is None:
            b = bt.iloc[bj]  # type: ignore[index]
            cause = "manual intervention" if b["entry_time"] in halted else (
                "signal drift" if b["entry_time"] in drifted else "missed fill")
            rows.append({"entry_time": b["entry_time"], "side": b["side"], "field": "trade", "session": "missing",
                         "backtest": f"{b['size']:g} @ {b['entry_price']:,.0f}", "difference": np.nan,
                         "cause": cause, "pnl_impact": -float(b["pnl"])})
            continue
        s = session.iloc[si]
        if bj is None:
            cause = "signal drift" if s["entry_time"] in drifted else "manual intervention"
            rows.append({"entry_time": s["entry_time"], "side": s["side"], "field": "trade",
                         "session": f"{s['size']:g} @ {s['entry_price']:,.0f}", "backtest": "missing",
                         "difference": np.nan, "cause": cause, "pnl_impact": float(s["pnl"])})
            continue
        rows.extend(_pair_diffs(s, bt.iloc[bj]))
    return pd.DataFrame(rows, columns=cols)


def _pair_diffs(s: pd.Series, b: pd.Series) -> list[dict[str, Any]]:
    """Field differences of one matched trade; slippage is priced as (fill gap × size) against the trader."""
    sign = 1.0 if b["side"] == "long" else -1.0
    out: list[dict[str, Any]] = []

    def add(name: str, cause: str, impact: float) -> None:
        out.append({"entry_time": b["entry_time"], "side": b["side"], "field": name, "session": s[name],
                    "backtest": b[name], "difference": _delta(s[name], b[name]), "cause": cause, "pnl_impact": impact})

    for name in ("entry_time", "exit_time"):
        if s[name] != b[name]:
            add(name, "latency", 0.0)
    if not _same(s["size"], b["size"]):
        add("size", "partial fill", 0.0)
    size = float(s["size"])
    if not _same(s["entry_price"], b["entry_price"]):
        add("entry_price", "slippage", -sign * (float(s["entry_price"]) - float(b["entry_price"])) * size)
    if not _same(s["exit_price"], b["exit_price"]):
        add("exit_price", "slippage", sign * (float(s["exit_price"]) - float(b["exit_price"])) * size)
    for name in ("fees", "interest"):
        if not _same(s[name], b[name]):
            add(name, "fees", -(float(s[name]) - float(b[name])))
    if s["exit_reason"] != b["exit_reason"]:
        add("exit_reason", "latency" if s["exit_time"] != b["exit_time"] else "slippage", 0.0)
    priced = sum(r["pnl_impact"] for r in out)
    gap = float(s["pnl"]) - float(b["pnl"])
    if not _same(s["pnl"], b["pnl"]) and not _same(gap, priced):
        cause = next((r["cause"] for r in out), "slippage")
        add("pnl", cause, gap - priced)
    return out


def _delta(a: Any, b: Any) -> Any:
    if isinstance(a, pd.Timestamp) and isinstance(b, pd.Timestamp):
        return a - b
    try:
        return float(a) - float(b)
    except (TypeError, ValueError):
        return np.nan
