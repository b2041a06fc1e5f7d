"""Reports: every template through `python -m research report` on the shipped data, each page checked in
headless Chromium, live-vs-backtest reconciliation against a real paper replay, and the display helpers."""

from __future__ import annotations

import gzip
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from cryptobot.execution import trades_frame
from cryptobot.kernels import execution as ex
from cryptobot.live.state import DB_NAME, StateStore
from research.plotting import downsample_positions
from research.reconcile import ReconcileError, reconcile, session_config
from research.report import ReportError, parse_param, template_parameters
from tests.browser import chromium, open_page

ROOT = Path(__file__).resolve().parent.parent


def test_downsample_keeps_each_bucket_extremes_and_endpoints() -> None:
    rng = np.random.default_rng(7)
    values = rng.standard_normal(50_000).cumsum()
    buckets = 500
    kept = downsample_positions(values, buckets)
    assert kept[0] == 0 and kept[-1] == len(values) - 1
    assert np.all(np.diff(kept) > 0)
    assert len(kept) <= 2 * buckets + 2
    edges = np.linspace(0, len(values), buckets + 1).astype(int)
    for a, b in zip(edges[:-1], edges[1:], strict=True):  # brute force: each slice's min and max are drawn
        inside = values[kept[(kept >= a) & (kept < b)]]
        assert inside.min() == values[a:b].min() and inside.max() == values[a:b].max()


def test_downsample_short_series_untouched() -> None:
    assert downsample_positions(np.arange(10.0), 100).tolist() == list(range(10))


def test_template_without_parameters_cell_is_refused(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("run_dir = 'x'")])
    path = tmp_path / "bad.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(ReportError, match="tagged 'parameters'"):
        template_parameters(path)


def test_parse_param() -> None:
    assert parse_param("top=10") == ("top", 10)
    assert parse_param("name=abc") == ("name", "abc")
    assert parse_param("end=2018-04-01") == ("end", "2018-04-01")
    assert parse_param("slow=[50, 100]") == ("slow", [50, 100])
    with pytest.raises(ReportError):
        parse_param("no-equals")


# ------------------------------------------------------------------ every report kind, through the CLI
MARKERS = {"CRYPTOBOT__EXCHANGE__API_KEY": "MARKER-KEY-81b2", "CRYPTOBOT__EXCHANGE__API_SECRET": "MARKER-SECRET-c4d9",
           "CRYPTOBOT__NOTIFY__DISCORD_WEBHOOK_URL": "https://discord.invalid/MARKER-HOOK-77ee"}
ENV = {**os.environ, **MARKERS}
H1 = ROOT / "data" / "sample" / "bitbank_BTC-JPY_1h_2018.csv.gz"
WORK = {  # small parameters: each report runs in seconds on the shipped data
    "backtest": ["--data", str(ROOT / "data" / "sample" / "bitbank_BTC-JPY_15m_2018.csv.gz"), "--end", "2018-02-15"],
    "sweep": ["--data", str(H1), "--end", "2018-05-01", "--blocks", "4", "--set", "strategies.ema_cross.enabled=true",
              "--grid", "strategies.ema_cross.fast=[5,10],strategies.ema_cross.slow=[50,100]"],
    "sweep_walkforward": ["--data", str(H1), "--end", "2018-07-01", "--blocks", "4", "--walk-forward", "60d:30d",
                          "--set", "strategies.ema_cross.enabled=true",
                          "--grid", "strategies.ema_cross.fast=[5,10],strategies.ema_cross.slow=[50]"],
    "tuning": ["--data", str(H1), "--end", "2018-07-01", "--trials", "2"],
    "walkforward": ["--data", str(ROOT / "data" / "sample" / "bitbank_BTC-JPY_4h_2018.csv.gz"), "--train", "120d",
                    "--test", "80d"],
    "tour": ["--param", "end=2018-04-01", "--param", "fast_values=[5, 10]", "--param", "slow_values=[50]"],
}
REPLAY_BARS = 900  # of the 4h sample: enough for trades, quick to replay
ALTERED_BY = 750.0  # JPY added to one exit fill price


def cli(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=900)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A paper-replay session of a slice of the shipped 4h file, and a copy with one exit fill price altered."""
    base = tmp_path_factory.mktemp("session")
    with gzip.open(ROOT / "data" / "sample" / "bitbank_BTC-JPY_4h_2018.csv.gz", "rt") as fh:
        lines = [next(fh) for _ in range(REPLAY_BARS + 1)]
    bars = base / "bars.csv"
    bars.write_text("".join(lines))
    state = base / "state"
    proc = cli("cryptobot.live", "paper", "--replay", str(bars), "--speed", "max", "--state-dir", str(state))
    assert proc.returncode == 0, proc.stderr[-2000:]
    altered = base / "altered"
    altered.mkdir()
    shutil.copy(state / DB_NAME, altered / DB_NAME)
    db = sqlite3.connect(altered / DB_NAME)
    try:
        rows = db.execute("SELECT id, data FROM events WHERE kind = 'exit' ORDER BY id").fetchall()
        assert len(rows) >= 3, "the replay slice must close a few trades"
        event_id, blob = rows[len(rows) // 2]
        event = np.frombuffer(blob, dtype=np.float64).copy()
        event[ex.EV_PRICE] += ALTERED_BY
        db.execute("UPDATE events SET data = ? WHERE id = ?", (event.tobytes(), event_id))
        db.commit()
    finally:
        db.close()
    return {"state": state, "altered": altered}



@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory, session: dict[str, Path]) -> dict[str, tuple[int, str, Path]]:
    """Every report kind executed once through `python -m research report` (exit code, stderr, output dir)."""
    base = tmp_path_factory.mktemp("reports")
    out: dict[str, tuple[int, str, Path]] = {}
    jobs = {kind: [kind.split("_")[0], *args] for kind, args in WORK.items()}
    jobs["live"] = ["live", "--state-dir", str(session["state"])]
    jobs["live_altered"] = ["live", "--state-dir", str(session["altered"])]
    for name, args in jobs.items():
        proc = cli("research", "report", *args[:1], "--out", str(base / name), "--quiet", *args[1:])
        out[name] = (proc.returncode, proc.stderr, base / name)
    return out


KINDS = [*WORK, "live", "live_altered"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_template_executes_through_report(kind: str, reports: dict[str, tuple[int, str, Path]]) -> None:
    code, err, out = reports[kind]
    assert code == 0, err[-3000:]
    nb = nbformat.read(out / "report.ipynb", as_version=4)
    tags = [t for c in nb.cells for t in c.get("metadata", {}).get("tags", [])]
    assert "parameters" in tags and "injected-parameters" in tags
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    page = (out / "report.html").read_text()
    assert page.count("plotly.js v") == 1, "plotly.js must be inlined exactly once"
    assert '<script src="http' not in page and "cdn." not in page.split("<body", 1)[0]


@pytest.fixture(scope="module")
def browser() -> Iterator[str]:
    with chromium() as address:
        yield address


@pytest.mark.parametrize("kind", KINDS)
def test_report_renders_in_headless_chromium(kind: str, reports: dict[str, tuple[int, str, Path]], browser: str,
                                             tmp_path: Path) -> None:
    code, err, out = reports[kind]
    assert code == 0, err[-3000:]
    shot = tmp_path / f"{kind}.png"
    page = open_page(browser, out / "report.html", shot)
    assert page.errors == []
    assert page.manifest and "Run manifest" in page.text
    assert page.plots, "every report draws at least one plotly figure"
    for plot in page.plots:
        assert plot["svg_width"] > 0 and plot["svg_height"] > 0 and plot["traces"] > 0, plot
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_no_secret_marker_in_any_report(reports: dict[str, tuple[int, str, Path]]) -> None:
    files = [p for _, _, out in reports.values() for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "report.html" for p in files)
    for path in files:
        data = path.read_bytes()
        for marker in MARKERS.values():
            assert marker.encode() not in data, f"{marker} in {path}"


def test_live_report_of_an_exact_replay_says_so_in_one_line(reports: dict[str, tuple[int, str, Path]]) -> None:
    page = (reports["live"][2] / "report.html").read_text()
    assert page.count("The session matches its backtest exactly") == 1


def test_reconcile_of_a_paper_replay_finds_no_difference(session: dict[str, Path]) -> None:
    rec = reconcile(session["state"], session_config())
    assert rec.matches and rec.trades.empty and rec.decisions.empty and rec.attribution().empty
    assert len(rec.session_trades) >= 3
    pd.testing.assert_frame_equal(rec.session_trades, rec.backtest_trades, check_exact=True)
    np.testing.assert_array_equal(rec.equity["session"].to_numpy(), rec.equity["backtest"].to_numpy())


def test_altered_fill_price_is_reported_as_that_trade_and_slippage(session: dict[str, Path],
                                                                   reports: dict[str, tuple[int, str, Path]]) -> None:
    store = StateStore(session["altered"], readonly=True)
    try:
        altered = store.trades()
    finally:
        store.close()
    exact = reconcile(session["state"], session_config()).session_trades
    changed = altered.index[altered["exit_price"] != exact["exit_price"]]
    assert len(changed) == 1
    trade = exact.loc[changed[0]]
    rec = reconcile(session["altered"], session_config())
    assert not rec.matches and rec.decisions.empty
    assert len(rec.trades) == 1
    row = rec.trades.iloc[0]
    assert (row["entry_time"], row["side"], row["field"], row["cause"]) == (
        trade["entry_time"], trade["side"], "exit_price", "slippage")
    assert row["difference"] == pytest.approx(ALTERED_BY)
    sign = 1.0 if trade["side"] == "long" else -1.0
    assert row["pnl_impact"] == pytest.approx(sign * ALTERED_BY * trade["size"])
    attribution = rec.attribution()
    assert attribution["cause"].tolist() == ["slippage"] and attribution["trades"].tolist() == [1]
    text = (reports["live_altered"][2] / "report.html").read_text()
    assert "slippage" in text and "matches its backtest exactly" not in text
    assert str(trade["entry_time"]) in text


def test_a_trade_the_session_lacks_is_a_missed_fill(session: dict[str, Path], tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    shutil.copy(session["state"] / DB_NAME, state / DB_NAME)
    exact = reconcile(session["state"], session_config()).session_trades
    gone = exact.iloc[1]
    db = sqlite3.connect(state / DB_NAME)
    try:
        db.execute("DELETE FROM events WHERE kind IN ('entry', 'exit') AND seq IN (?, ?)",
                   (int(gone["entry_bar"]), int(gone["exit_bar"])))
        db.commit()
    finally:
        db.close()
    rec = reconcile(state, session_config())
    assert len(rec.trades) == 1
    row = rec.trades.iloc[0]
    assert (row["entry_time"], row["field"], row["cause"], row["session"]) == (gone["entry_time"], "trade",
                                                                             "missed fill", "missing")
    assert row["pnl_impact"] == pytest.approx(-gone["pnl"])


def test_reconcile_refuses_another_trading_config(session: dict[str, Path]) -> None:
    with pytest.raises(ReconcileError, match="another trading config"):
        reconcile(session["state"], session_config(overrides=["risk.max_drawdown=0.33"]))


def test_backtest_after_warmup_equals_the_live_engine_after_its_history(sample_dir: Path) -> None:
    """`trade_from`: the backtest's view of a paper session's warm-up, checked against the bot's engine."""
    from cryptobot.config import load_config
    from cryptobot.data import load_frame, timestamps_ms
    from cryptobot.live.engine import Engine
    from research.backtest import run as backtest

    data = load_frame(sample_dir / "bitbank_BTC-JPY_4h_2018.csv.gz").iloc[:700]
    cfg = load_config()
    warm = 200
    engine = Engine(cfg, "4h")
    events = []
    equity = []
    for i, (ts, row) in enumerate(zip(timestamps_ms(data), data.itertuples(index=False), strict=True)):
        bar = (int(ts), row.open, row.high, row.low, row.close, row.volume)
        rec = engine.warm(bar) if i < warm else engine.step(bar)
        if rec.events is not None and len(rec.events):
            events.append(rec.events)
        equity.append(rec.equity)
    live = trades_frame(np.vstack(events), pd.DatetimeIndex(data.index))
    result = backtest(data, cfg, trade_from=warm)
    closed = result.trades[result.trades["exit_reason"] != "end_of_data"].reset_index(drop=True)
    assert len(closed) > 0 and closed["entry_bar"].min() >= warm
    pd.testing.assert_frame_equal(live, closed, check_exact=True)
    np.testing.assert_array_equal(np.asarray(equity)[:-1], result.equity.to_numpy()[:-1])
    assert (result.equity.to_numpy()[:warm] == cfg.execution.initial_capital).all()


def test_a_raising_template_fails_the_report(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("run_dir = ''", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("raise ValueError('the template broke')")],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    template = tmp_path / "broken.ipynb"
    nbformat.write(nb, template)
    proc = cli("research", "report", "tour", "--template", str(template), "--out", str(tmp_path / "o"), "--quiet")
    assert proc.returncode == 1
    assert "ValueError: the template broke" in proc.stderr and (tmp_path / "o" / "report.ipynb").exists()
    assert not (tmp_path / "o" / "report.html").exists()


def test_the_browser_check_sees_console_errors_and_undrawn_figures(browser: str, tmp_path: Path) -> None:
    """The page check itself can fail: a script error and a missing script are reported, no figure is found."""
    page_path = tmp_path / "bad.html"
    page_path.write_text("<html><body><script>console.error('broken on purpose')</script>"
                         "<script src='missing.js'></script><p>no figures</p></body></html>")
    page = open_page(browser, page_path, tmp_path / "bad.png", timeout=10)
    assert any("broken on purpose" in e for e in page.errors)
    assert any("missing.js" in e for e in page.errors)
    assert page.plots == [] and not page.manifest


def test_reconcile_of_an_ml_gated_replay_matches(session: dict[str, Path], tmp_path: Path) -> None:
    """The bundle's probabilities are part of every decision compared; a gated replay matches them bit for bit."""
    from cryptobot.live.__main__ import main as live_main

    sets = ["ml.enabled=true", f"ml.bundle_dir={ROOT / 'models' / 'demo' / 'bundle'}", "ml.threshold=0.15"]
    state = tmp_path / "state"
    args = ["paper", "--replay", str(session["state"].parent / "bars.csv"), "--speed", "max", "--state-dir", str(state)]
    assert live_main([*args, *[x for s in sets for x in ("--set", s)]]) == 0
    rec = reconcile(state, session_config(overrides=sets))
    assert rec.matches and len(rec.session_trades) > 0
    with pytest.raises(ReconcileError, match="another trading config"):
        reconcile(state, session_config())


def test_report_live_refuses_bad_input_with_a_clear_message(tmp_path: Path, session: dict[str, Path]) -> None:
    proc = cli("research", "report", "live", "--out", str(tmp_path / "a"))
    assert proc.returncode == 2 and "--state-dir" in proc.stderr
    proc = cli("research", "report", "live", "--state-dir", str(tmp_path / "nothing"), "--out", str(tmp_path / "b"))
    assert proc.returncode == 2 and "no state here" in proc.stderr
    proc = cli("research", "report", "live", "--state-dir", str(session["state"]), "--out", str(tmp_path / "c"),
               "--set", "risk.max_drawdown=0.33", "--quiet")
    assert proc.returncode == 2 and "another trading config" in proc.stderr and "--set" in proc.stderr
    assert not (tmp_path / "c" / "report.ipynb").exists()
