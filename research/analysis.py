"""Lookahead and warm-up analysis of features and signals (freqtrade's idea, applied to our kernels).

Lookahead: recompute on the data cut at many points; any value at or before a cut that differs from the
full-history run used information from after the cut. Warm-up: start the computation at arbitrary bars and
count how long each feature takes to agree with the run from the series start — recursive indicators (EMA,
Wilder smoothing) carry their seed for a while after they become valid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm import tqdm

from cryptobot.config import Config
from cryptobot.features import FEATURE_ORDER, compute_features, feature_warmups
from cryptobot.strategies import compute_signals

Compute = Callable[[pd.DataFrame], pd.DataFrame]


def features_and_signals(config: Config, timeframe: str | None = None) -> Compute:
    """The default subject: the 15 features and every strategy's and the combiner's outputs."""

    def compute(ohlcv: pd.DataFrame) -> pd.DataFrame:
        return compute_signals(ohlcv, config, timeframe=timeframe, with_features=True)

    return compute


@dataclass
class LookaheadFinding:
    cut: int
    column: str
    row: int
    timestamp: pd.Timestamp
    full_value: float
    cut_value: float


@dataclass
class LookaheadReport:
    cuts: list[int]
    columns: list[str]
    findings: list[LookaheadFinding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def __str__(self) -> str:
        lines = [f"lookahead analysis: {len(self.cuts)} cut(s), {len(self.columns)} column(s) compared"]
        if self.ok:
            lines.append("no value or signal at or before any cut changed: no lookahead found")
            return "\n".join(lines)
        by_column: dict[str, list[LookaheadFinding]] = {}
        for f in self.findings:
            by_column.setdefault(f.column, []).append(f)
        for column, found in by_column.items():
            first = found[0]
            lines.append(
                f"LOOKAHEAD {column}: {len(found)} changed value(s); e.g. cut at row {first.cut}: row {first.row} "
                f"({first.timestamp}) full-history {first.full_value!r} vs cut {first.cut_value!r}"
            )
        return "\n".join(lines)


def default_cuts(n_rows: int, count: int, start: int, seed: int = 0) -> list[int]:
    """Evenly spread cut points after `start`, each nudged by a seeded random offset (mid-bucket cuts too)."""
    if n_rows <= start + 2:
        return [n_rows]
    base = np.linspace(start + 1, n_rows - 1, num=min(count, n_rows - start - 1)).astype(np.int64)
    jitter = np.random.default_rng(seed).integers(0, 7, size=base.size)
    return sorted({int(min(n_rows - 1, b + j)) for b, j in zip(base, jitter, strict=True)})


def _differs(full: np.ndarray, part: np.ndarray) -> np.ndarray:
    both_nan = np.isnan(full) & np.isnan(part)
    return ~both_nan & (full != part)


def lookahead(ohlcv: pd.DataFrame, compute: Compute, cuts: list[int], progress: bool = True,
              max_findings_per_cut: int = 5) -> LookaheadReport:
    full = compute(ohlcv)
    report = LookaheadReport(cuts=cuts, columns=list(full.columns))
    full_values = full.to_numpy(dtype=np.float64)
    for cut in tqdm(cuts, desc="lookahead", unit="cut", disable=not progress):
        part = compute(ohlcv.iloc[:cut]).to_numpy(dtype=np.float64)
        diff = _differs(full_values[:cut], part)
        rows, cols = np.nonzero(diff)
        for r, c in list(zip(rows, cols, strict=True))[:max_findings_per_cut]:
            report.findings.append(
                LookaheadFinding(cut, report.columns[c], int(r), ohlcv.index[int(r)], float(full_values[r, c]), float(part[r, c]))
            )
    return report


@dataclass
class WarmupRow:
    feature: str
    declared: int
    converged: int  # bars from the start offset until values agree (and keep agreeing) with the full run
    starts: int


@dataclass
class WarmupReport:
    rows: list[WarmupRow]
    rtol: float
    history_bars: int

    @property
    def too_short(self) -> list[WarmupRow]:
        return [r for r in self.rows if r.converged > self.history_bars]

    @property
    def ok(self) -> bool:
        return not self.too_short

    def __str__(self) -> str:
        lines = [
            f"warm-up analysis (agreement to {self.rtol:g} relative with a run from the series start)",
            f"{'feature':<18} {'declared':>9} {'converged':>10}  note",
        ]
        for r in self.rows:
            if r.converged > self.history_bars:
                note = f"needs more than live.history_bars={self.history_bars} bars of history"
            elif r.converged > r.declared:
                note = "recursive: valid from 'declared', identical to full history from 'converged'"
            else:
                note = "exact once valid"
            lines.append(f"{r.feature:<18} {r.declared:>9} {r.converged:>10}  {note}")
        return "\n".join(lines)


def warmup(ohlcv: pd.DataFrame, config: Config, starts: list[int], rtol: float = 1e-9, progress: bool = True) -> WarmupReport:
    full = compute_features(ohlcv, config.features).to_numpy()
    declared = feature_warmups(config.features)
    converged = dict.fromkeys(FEATURE_ORDER, 0)
    for s in tqdm(starts, desc="warm-up", unit="start", disable=not progress):
        part = compute_features(ohlcv.iloc[s:], config.features).to_numpy()
        ref = full[s:]
        with np.errstate(invalid="ignore", divide="ignore"):
            close = np.abs(part - ref) <= rtol * np.maximum(np.abs(ref), 1e-300)
        close |= np.isnan(part) & np.isnan(ref)
        for j, name in enumerate(FEATURE_ORDER):
            bad = np.flatnonzero(~close[:, j])
            need = int(bad[-1]) + 1 if bad.size else 0
            converged[name] = max(converged[name], need)
    rows = [WarmupRow(n, declared[n], converged[n], len(starts)) for n in FEATURE_ORDER]
    return WarmupReport(rows, rtol, config.live.history_bars)
