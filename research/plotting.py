"""Plots for `equity.html` and the HTML reports: display down-sampling that keeps extremes, shared figures.

A year of 15m bars is 35k points per series; drawn as-is three times (price, equity, drawdown) it made
an 8.9 MB page that scrolls slowly. Down-sampling keeps the first and last point and, per display bucket,
the minimum and the maximum in time order, so every peak, trough and the worst drawdown stay visible.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cryptobot import atomic

DISPLAY_POINTS = 2000  # buckets per series; each keeps at most two points (its min and its max)


def downsample_positions(values: np.ndarray, buckets: int = DISPLAY_POINTS) -> np.ndarray:
    """Sorted positions to draw: first, last, and the min and max of each of `buckets` equal slices.

    NaNs are ignored when choosing extremes (a bucket of only NaN keeps its first point, so gaps stay gaps).
    """
    n = len(values)
    if n <= 2 * buckets + 2:
        return np.arange(n)
    values = np.asarray(values, dtype=np.float64)
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    lo_fill = np.where(np.isnan(values), np.inf, values)
    hi_fill = np.where(np.isnan(values), -np.inf, values)
    keep = [np.array([0, n - 1])]
    starts = edges[:-1]
    keep.append(starts + np.array([np.argmin(lo_fill[a:b]) for a, b in zip(starts, edges[1:], strict=True)]))
    keep.append(starts + np.array([np.argmax(hi_fill[a:b]) for a, b in zip(starts, edges[1:], strict=True)]))
    return np.unique(np.concatenate(keep))


def downsample(series: pd.Series, buckets: int = DISPLAY_POINTS) -> pd.Series:
    """`series` reduced for display by `downsample_positions` (index kept, extremes kept)."""
    return series.iloc[downsample_positions(series.to_numpy(np.float64), buckets)]


def equity_figure(equity: pd.Series, close: pd.Series, trades: pd.DataFrame, title: str = "",
                  buckets: int = DISPLAY_POINTS, currency: str = "JPY") -> Any:
    """Price with entries and exits, equity and drawdown, sharing one time axis (series down-sampled)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    dd = equity / equity.cummax() - 1.0
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, row_heights=[0.45, 0.35, 0.2], vertical_spacing=0.04,
                        subplot_titles=("Price and trades", f"Equity ({currency})", "Drawdown"))
    px = downsample(close, buckets)
    fig.add_trace(go.Scatter(x=px.index, y=px.to_numpy(), name="close", line={"width": 1, "color": "#555"}),
                  row=1, col=1)
    for side, symbol, color in (("long", "triangle-up", "green"), ("short", "triangle-down", "red")):
        part = trades[trades["side"] == side]
        fig.add_trace(go.Scatter(x=part["entry_time"], y=part["entry_price"], mode="markers", name=f"{side} entry",
                                 marker={"symbol": symbol, "color": color, "size": 9}), row=1, col=1)
    fig.add_trace(go.Scatter(x=trades["exit_time"], y=trades["exit_price"], mode="markers", name="exit",
                             text=trades["exit_reason"], marker={"symbol": "x", "color": "black", "size": 7}),
                  row=1, col=1)
    eq = downsample(equity, buckets)
    fig.add_trace(go.Scatter(x=eq.index, y=eq.to_numpy(), name="equity", line={"color": "royalblue"}), row=2, col=1)
    dds = downsample(dd, buckets)
    fig.add_trace(go.Scatter(x=dds.index, y=dds.to_numpy(), name="drawdown", fill="tozeroy",
                             line={"color": "firebrick"}), row=3, col=1)
    fig.update_yaxes(tickformat=".0%", row=3, col=1)
    fig.update_layout(title=title, height=900, hovermode="x unified", margin={"t": 80})
    return fig


def write_figure_html(fig: Any, path: Path) -> None:
    """A stand-alone HTML page with plotly.js inlined (opens offline), written atomically."""
    atomic.atomic_write(path, lambda tmp: fig.write_html(tmp, include_plotlyjs=True, full_html=True))
