"""`python -m cryptobot.live {paper,live,status,trades,stop,halt,resume}`: run the bot and operate it."""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
from pathlib import Path
from typing import Any

from cryptobot import atomic
from cryptobot.config import ConfigError, load_config, parse_set_options
from cryptobot.kernels import execution as ex
from cryptobot.live.loop import EXIT_OK, EXIT_REFUSED, Bot, running_pid, wait_for_exit
from cryptobot.live.state import StateError, StateStore


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("--speed must be a positive number of bars per second, or max")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cryptobot.live",
        description="Paper trading and replay through the backtest's kernels, with crash-only SQLite state, and "
                    "the operator commands. Every command takes --state-dir (default: live.state_dir, `state`).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--state-dir", help="state directory (SQLite state, lock, live.log); default live.state_dir")
        p.add_argument("--config", action="append", default=[], metavar="FILE", help="config YAML file(s), in order")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")

    paper = sub.add_parser("paper", help="paper-trade live public data, or replay a file (--replay)",
                           description="Paper trading: decisions on each closed bar, fills simulated by the "
                                       "execution kernel at the next open. A restart continues after the last "
                                       "committed bar and catches up the bars missed while down.")
    common(paper)
    paper.add_argument("--replay", metavar="FILE_OR_KEY",
                       help="bars from a CSV/Parquet file or store key instead of the network; exits 0 when done")
    paper.add_argument("--speed", type=_speed, default=None, metavar="N|max",
                       help="replay N bars per second, or max (default) as fast as possible")
    live = sub.add_parser("live", help="trade BTC/JPY margin on bitbank (keys from the environment)",
                          description="Live trading: the same bar loop and kernels as paper; the decisions are sent "
                                      "to bitbank as order units (entry, stop with trigger_price, take-profit). Needs "
                                      "CRYPTOBOT__EXCHANGE__API_KEY / _API_SECRET in the environment. Refuses to "
                                      "start when the exchange's position differs from the state, until --adopt.")
    common(live)
    live.add_argument("--adopt", action="store_true",
                      help="take the exchange's position as the truth at start (recorded and alerted)")
    status = sub.add_parser("status", help="position, orders, equity, P&L, last bar, kill switches, process")
    common(status)
    status.add_argument("--json", action="store_true", help="machine-readable, with the trade fingerprint")
    trades = sub.add_parser("trades", help="closed trades in the backtest's trades.csv columns")
    common(trades)
    trades.add_argument("--out", required=True, metavar="FILE.csv")
    stop = sub.add_parser("stop", help="ask the running process to finish its bar and exit (SIGKILL after a timeout)")
    common(stop)
    stop.add_argument("--timeout", type=float, help="seconds before SIGKILL (default live.stop_timeout_seconds)")
    for name, text in (("halt", "manual kill switch: no new decisions are executed until resume"),
                       ("resume", "clear the manual halt and the drawdown halt")):
        common(sub.add_parser(name, help=text, description=text))
    return parser


def _status(store: StateStore, state_dir: Path) -> dict[str, Any]:
    meta, control = store.meta(), store.control()
    saved = store.kernel_states()
    trades = store.trades()
    pid = running_pid(state_dir)
    out: dict[str, Any] = {
        "state_dir": str(state_dir), "mode": meta.get("mode"), "timeframe": meta.get("timeframe"),
        "running": pid is not None, "pid": pid, "bars": store.bar_count(),
        "trades": len(trades), "fingerprint": store.fingerprint(),
        "kill_switches": {"manual_halt": control.get("manual_halt") == "1",
                          "model_unverified": control.get("model_error") or None,
                          "exchange": json.loads(control.get("live_switches") or "[]") or None},
    }
    if saved is None:
        return {**out, "last_bar": None, "position": None, "open_orders": [], "equity": None}
    st = saved.execution
    init = float(meta.get("initial_capital", "nan"))
    pos = float(st[ex.S_POS])
    last_ts = saved.ts
    out.update({
        "last_bar": _iso(last_ts),
        "position": None if pos == 0 else {
            "side": "long" if pos > 0 else "short", "size": abs(pos), "entry_price": float(st[ex.S_ENTRY_PRICE]),
            "stop_loss": _num(st[ex.S_SL]), "take_profit": _num(st[ex.S_TP]), "interest": float(st[ex.S_INTEREST])},
        "open_orders": store.last_orders(),
        "equity": float(st[ex.S_EQUITY]),
        "pnl_total": float(st[ex.S_EQUITY]) - init,
        "pnl_today": float(st[ex.S_EQUITY] - st[ex.S_DAY_START_EQ]),
    })
    resume_pending = int(control.get("resume_seq") or 0) > int(control.get("resume_applied") or 0)
    out["kill_switches"].update({
        "drawdown_halt": bool(st[ex.S_HALTED]) and not resume_pending, "resume_pending": resume_pending,
        "daily_loss_limit": bool(st[ex.S_DAY_HALT]), "anomaly": bool(st[ex.S_ANOMALY]),
        "loss_pause_until": _iso(int(st[ex.S_PAUSE_UNTIL])) if st[ex.S_PAUSE_UNTIL] > last_ts else None,
    })
    return out


def _num(x: float) -> float | None:
    return None if not math.isfinite(float(x)) else float(x)


def _iso(ms: int | None) -> str | None:
    import pandas as pd

    return None if ms is None else pd.Timestamp(int(ms), unit="ms", tz="UTC").isoformat()


def _print_status(s: dict[str, Any]) -> None:
    run = f"running (pid {s['pid']})" if s["running"] else "stopped"
    print(f"state {s['state_dir']}: {s['mode'] or 'new'} {s['timeframe'] or ''}, {run}")
    print(f"last bar {s['last_bar']} ({s['bars']} bars processed)")
    p = s["position"]
    print("position flat" if not p else f"position {p['side']} {p['size']:g} @ {p['entry_price']:.0f} "
          f"(stop {p['stop_loss']}, take profit {p['take_profit']})")
    for o in s["open_orders"]:
        print(f"open order: {o['kind']} {o['side']} {o['amount']:g} ({o['reason']}) for the next open")
    if s["equity"] is not None:
        print(f"equity {s['equity']:,.0f}, P&L today {s['pnl_today']:+,.0f}, total {s['pnl_total']:+,.0f}")
    on = [k for k, v in s["kill_switches"].items() if v]
    print(f"kill switches: {', '.join(on) if on else 'none'}")
    print(f"trades {s['trades']}, fingerprint {s['fingerprint'][:16]}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = load_config(args.config, overrides=parse_set_options(args.set))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_REFUSED
    state_dir = Path(args.state_dir or cfg.live.state_dir)
    if args.command == "paper":
        return Bot(cfg, state_dir, replay=args.replay, speed=args.speed).run()
    if args.command == "live":
        return Bot(cfg, state_dir, live=True, adopt=args.adopt).run()
    if args.command == "stop":
        pid = running_pid(state_dir)
        if pid is None or pid < 0:
            print(f"{state_dir}: no running process", file=sys.stderr)
            return 1
        os.kill(pid, signal.SIGTERM)
        timeout = args.timeout if args.timeout is not None else cfg.live.stop_timeout_seconds
        if wait_for_exit(pid, state_dir, timeout):
            print(f"stopped process {pid} after its current bar")
            return EXIT_OK
        os.kill(pid, signal.SIGKILL)
        print(f"process {pid} did not stop within {timeout:g}s: killed (the state keeps the last committed bar)")
        return EXIT_OK
    try:
        if args.command in ("halt", "resume"):
            if not (state_dir / "cryptobot.sqlite").exists():
                raise StateError(f"{state_dir}: no state here (start `python -m cryptobot.live paper` first)")
            store = StateStore(state_dir)
            try:
                if args.command == "halt":
                    store.set_control("manual_halt", "1")
                    print("halted: no new decisions are executed (stops and take-profits stay) until `resume`")
                else:
                    seq = int(store.control().get("resume_seq") or 0) + 1
                    store.set_control("manual_halt", "0")
                    store.set_control("resume_seq", str(seq))
                    print("resumed: manual halt cleared; a drawdown halt is cleared at the next bar")
            finally:
                store.close()
            return EXIT_OK
        store = StateStore(state_dir, readonly=True)
        try:
            if args.command == "status":
                s = _status(store, state_dir)
                if args.json:
                    print(json.dumps(s, indent=2))
                else:
                    _print_status(s)
            else:
                out = Path(args.out)
                trades = store.trades()
                atomic.write_csv(out, trades, index=False)
                print(f"{len(trades)} closed trades → {out}")
        finally:
            store.close()
    except StateError as exc:
        print(exc, file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
