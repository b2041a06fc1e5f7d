"""Reports: display down-sampling keeps every extreme; templates without a `parameters` cell are refused."""

from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
import pytest

from research.plotting import downsample_positions
from research.report import ReportError, parse_param, template_parameters


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
    with pytest.raises(ReportError):
        parse_param("no-equals")


def test_backtest_report_from_cli(tmp_path: Path, sample_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys

    markers = {"CRYPTOBOT__EXCHANGE__API_KEY": "MARKER-KEY-81b2", "CRYPTOBOT__EXCHANGE__API_SECRET": "MARKER-SECRET-c4d9",
               "CRYPTOBOT__NOTIFY__DISCORD_WEBHOOK_URL": "https://discord.invalid/MARKER-HOOK-77ee"}
    env = {**__import__("os").environ, **markers}
    out = tmp_path / "bt"
    proc = subprocess.run([sys.executable, "-m", "research", "report", "backtest", "--out", str(out), "--quiet",
                           "--data", str(sample_dir / "bitbank_BTC-JPY_15m_2018.csv.gz"), "--end", "2018-02-15"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = (out / "report.html").read_text()
    assert 'id="run-manifest"' in page and page.count("plotly.js v") <= 1 and "<script src=\"http" not in page
    for marker in markers.values():
        for name in ("report.html", "report.ipynb", "manifest.json"):
            assert marker not in (out / name).read_text()
