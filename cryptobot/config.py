"""Typed configuration: defaults -> YAML file(s) -> environment (`CRYPTOBOT__SECTION__KEY`).

One model covers every section the bot and the research tools read. Defaults are the seed's *effective*
values (seed spec §2, §13), not its dead keys. Secrets (exchange key/secret, Discord webhook) are accepted
only from the environment; they are `SecretStr`, so `repr`, `print` and `model_dump` mask them.

Every validation problem becomes one line naming the dotted key, the offending value and what is allowed,
collected into a single `ConfigError` so a user fixes everything in one pass.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from cryptobot.jsonio import dumps

ENV_PREFIX = "CRYPTOBOT__"
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config" / "default.yaml"

# Dotted keys that may only come from the environment.
SECRET_KEYS = frozenset(
    {"exchange.api_key", "exchange.api_secret", "notify.discord_webhook_url"}
)

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveFloat = Annotated[float, Field(gt=0.0)]
PositiveInt = Annotated[int, Field(ge=1)]
TIMEFRAME_PATTERN = r"^[1-9][0-9]*[mhdw]$"


class ConfigError(ValueError):
    """Invalid configuration: `problems` holds one human-readable line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


# --------------------------------------------------------------------------- exchange and data
class ExchangeConfig(_Section):
    """Which market we trade and the exchange's order-size rules."""

    name: str = Field("bitbank", description="ccxt exchange id")
    symbol: str = Field("BTC/JPY", pattern=r"^[A-Z0-9]+/[A-Z0-9]+$")
    amount_step: PositiveFloat = Field(0.0001, description="order amount step (BTC)")
    min_amount: PositiveFloat = Field(0.0001, description="minimum order amount (BTC)")
    leverage: float = Field(1.0, ge=1.0, le=2.0, description="bitbank margin allows at most 2x")
    api_key: SecretStr | None = Field(None, description="only from CRYPTOBOT__EXCHANGE__API_KEY")
    api_secret: SecretStr | None = Field(None, description="only from CRYPTOBOT__EXCHANGE__API_SECRET")


class DataConfig(_Section):
    """Timeframes and where the Parquet store lives."""

    timeframe: str = Field("15m", pattern=TIMEFRAME_PATTERN, description="main (decision) timeframe")
    higher_timeframe: str = Field("4h", pattern=TIMEFRAME_PATTERN, description="MultiTimeframe trend")
    store_dir: str = Field("data/store", description="root of the Parquet store")


class CostsConfig(_Section):
    """bitbank fee schedule (per side) plus slippage and daily margin interest; all P&L is net of these."""

    maker_fee: float = Field(0.0, ge=-0.01, le=0.01, description="negative = rebate")
    taker_fee: float = Field(0.001, ge=0.0, le=0.01)
    slippage_bps: float = Field(2.0, ge=0.0, le=500.0)
    margin_interest_daily: float = Field(0.0004, ge=0.0, le=0.01, description="per day of open position")
    order_type: Literal["market", "post_only"] = "market"


# --------------------------------------------------------------------------- features
class FeaturesConfig(_Section):
    """Indicator periods. Column names stay the seed's (`rsi_14` …) whatever the period."""

    rsi_period: PositiveInt = 14
    macd_fast: PositiveInt = 12
    macd_slow: PositiveInt = 26
    atr_period: PositiveInt = 14
    bb_period: Annotated[int, Field(ge=2)] = 20
    bb_std: PositiveFloat = 2.0
    ema_fast: PositiveInt = 20
    ema_slow: PositiveInt = 50
    volume_ratio_period: PositiveInt = 20
    donchian_period: PositiveInt = 20
    adx_period: PositiveInt = 14

    @model_validator(mode="after")
    def _fast_below_slow(self) -> FeaturesConfig:
        if self.macd_fast >= self.macd_slow:
            raise ValueError(f"macd_fast ({self.macd_fast}) must be below macd_slow ({self.macd_slow})")
        return self


# --------------------------------------------------------------------------- strategies
class StrategyBase(_Section):
    enabled: bool = True
    weight: float = Field(1.0, ge=0.0, le=100.0, description="vote weight in the combiner")


class ATRBasedConfig(StrategyBase):
    bb_overbought: Fraction = 0.7
    bb_oversold: Fraction = 0.3
    rsi_overbought: float = Field(65.0, ge=0.0, le=100.0)
    rsi_oversold: float = Field(35.0, ge=0.0, le=100.0)
    base_confidence: Fraction = 0.3
    confidence_multiplier: Fraction = 0.4
    min_confidence: Fraction = 0.3
    low_volatility_ratio: PositiveFloat = 0.5
    high_volatility_ratio: PositiveFloat = 1.5
    volatility_lookback: Annotated[int, Field(ge=2)] = 20
    sl_atr: PositiveFloat = 1.5
    tp_atr: PositiveFloat = 3.0


class MochipoyAlertConfig(StrategyBase):
    rci_period: Annotated[int, Field(ge=3)] = 14
    rci_overbought: float = Field(80.0, ge=-100.0, le=100.0)
    rci_oversold: float = Field(-80.0, ge=-100.0, le=100.0)
    strong_confidence: Fraction = Field(0.725, description="2 votes; the seed's 0.65 + mean jitter 0.075")
    vote_step: Fraction = Field(0.15, description="added per vote beyond two")
    weak_confidence: Fraction = Field(0.425, description="1 vote; the seed's 0.35 + mean jitter 0.075")
    max_confidence: Fraction = 0.95
    min_confidence: Fraction = 0.4
    sl_atr: PositiveFloat = 2.0
    tp_atr: PositiveFloat = 4.0


class MultiTimeframeConfig(StrategyBase):
    trend_lookback: PositiveInt = Field(16, description="higher-timeframe bars for the EMA-slow slope")
    min_trend_strength: PositiveFloat = 0.002
    min_volatility: float = Field(0.005, ge=0.0, description="higher-timeframe ATR/price floor")
    entry_lookback: PositiveInt = 4
    rsi_overbought: float = Field(70.0, ge=0.0, le=100.0)
    rsi_oversold: float = Field(30.0, ge=0.0, le=100.0)
    trend_weight: Fraction = 0.6
    entry_weight: Fraction = 0.4
    min_confidence: Fraction = 0.4
    sl_atr: PositiveFloat = 2.0
    tp_atr: PositiveFloat = 6.0


class DonchianChannelConfig(StrategyBase):
    breakout_threshold: float = Field(0.002, ge=0.0, le=0.1)
    breakout_volume_ratio: PositiveFloat = 1.2
    breakout_confidence: Fraction = 0.75
    reversal_threshold: Fraction = 0.05
    weak_zone_low: Fraction = 0.25
    weak_zone_high: Fraction = 0.75
    middle_zone_min: Fraction = 0.4
    middle_zone_max: Fraction = 0.6
    weak_signal_confidence: Fraction = 0.35
    min_confidence: Fraction = 0.3
    sl_atr: PositiveFloat = 2.0
    tp_atr: PositiveFloat = 3.0


class ADXTrendStrengthConfig(StrategyBase):
    strong_trend_threshold: float = Field(25.0, ge=0.0, le=100.0)
    weak_trend_threshold: float = Field(15.0, ge=0.0, le=100.0)
    di_crossover_threshold: float = Field(0.5, ge=0.0)
    weak_di_threshold: float = Field(1.0, ge=0.0)
    moderate_di_threshold: float = Field(2.0, ge=0.0)
    di_weak_signal_confidence: Fraction = 0.35
    min_confidence: Fraction = 0.3
    sl_atr: PositiveFloat = 2.0
    tp_atr: PositiveFloat = 3.0
    strong_trend_multiplier: PositiveFloat = 1.5
    trade_weak_trend: bool = Field(True, description="the seed's rule: trade the DI side when ADX shows no trend")


class EMACrossConfig(StrategyBase):
    """The worked example of a researcher's own strategy (docs) and the benchmark yardstick."""

    enabled: bool = False
    fast: PositiveInt = 10
    slow: PositiveInt = 30
    sl_pct: float = Field(
        0.05, ge=0.0, le=1.0,
        description="stop-loss distance as a fraction of price; 0 = no stop (1.0 puts a long's stop at 0: none)",
    )
    tp_pct: float = Field(0.0, ge=0.0, le=10.0, description="take-profit distance as a fraction of price; 0 = none")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> EMACrossConfig:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be below slow ({self.slow})")
        return self


class CustomStrategyConfig(_Section):
    """Settings of a researcher's own registered strategy (`cryptobot.strategies.register_strategy`)."""

    enabled: bool = True
    weight: float = Field(1.0, ge=0.0, le=100.0)
    params: dict[str, float] = Field(default_factory=dict, description="overrides of the registered defaults")


class CombinerConfig(_Section):
    """How strategy votes become one action (seed §4.8 and the author's later weighted-sum fix)."""

    method: Literal["weighted_sum", "average_confidence"] = "weighted_sum"
    min_conflict_threshold: Fraction = Field(0.1, description="average_confidence: buy/sell gap needed")
    min_score: Fraction = Field(
        0.1, description="weighted_sum: net weighted confidence (share of total weight) needed to act"
    )


class StrategiesConfig(_Section):
    combiner: CombinerConfig = CombinerConfig()
    atr_based: ATRBasedConfig = ATRBasedConfig()
    mochipoy_alert: MochipoyAlertConfig = MochipoyAlertConfig()
    multi_timeframe: MultiTimeframeConfig = MultiTimeframeConfig()
    donchian_channel: DonchianChannelConfig = DonchianChannelConfig()
    adx_trend_strength: ADXTrendStrengthConfig = ADXTrendStrengthConfig()
    ema_cross: EMACrossConfig = EMACrossConfig()
    custom: dict[str, CustomStrategyConfig] = Field(default_factory=dict, description="registered own strategies")


# --------------------------------------------------------------------------- execution and risk
class ExecutionConfig(_Section):
    """Fill semantics switches (design §3)."""

    initial_capital: PositiveFloat = Field(1_000_000.0, description="JPY")
    stops_on_fill_bar: bool = Field(True, description="SL/TP may trigger on the bar the entry fills")
    reverse_on_opposite: bool = Field(False, description="after closing on an opposite signal, open it")
    allow_short: bool = True
    fixed_amount: float = Field(
        0.0, ge=0.0,
        description="if > 0, every entry is this many base units (BTC) instead of Kelly sizing, capped at equity × leverage",
    )
    fixed_stake: float = Field(
        0.0, ge=0.0,
        description="if > 0, every entry is worth this much quote currency (JPY) at the signal close, rounded "
        "down to the amount step, instead of Kelly sizing, capped at equity × leverage",
    )

    @model_validator(mode="after")
    def _one_fixed_size(self) -> ExecutionConfig:
        if self.fixed_amount > 0.0 and self.fixed_stake > 0.0:
            raise ValueError(
                f"fixed_amount ({self.fixed_amount}) and fixed_stake ({self.fixed_stake}) are both set: give the "
                "fixed size in base units (fixed_amount) or in quote currency (fixed_stake), not both"
            )
        return self


class KellyConfig(_Section):
    safety_factor: Fraction = 0.7
    max_position_ratio: Fraction = Field(0.10, description="cap on the fraction of equity per trade")
    min_trades: Annotated[int, Field(ge=1)] = 20
    fallback_size: Fraction = Field(0.01, description="fraction of equity while the window holds < min_trades trades")
    lookback_trades: int = Field(100, ge=2, description="most recent trades kept in the record")
    window_days: float = Field(
        30.0, gt=0.0,
        description="only trades closed within this many days (bar time) count; fewer than min_trades → fallback",
    )


class RiskConfig(_Section):
    """Seed §7 with its bugs fixed: every stop here really stops trading, in bar time."""

    enabled: bool = Field(True, description="false: no halts, pauses, daily limit or anomaly skips (studies)")
    kelly: KellyConfig = KellyConfig()
    max_drawdown: float = Field(0.20, gt=0.0, le=0.9, description="halt until a human resumes")
    drawdown_scaling: bool = Field(True, description="scale size by (1 - drawdown / max_drawdown)")
    consecutive_loss_limit: Annotated[int, Field(ge=1)] = 5
    cooldown_hours: float = Field(24.0, ge=0.0)
    daily_loss_limit: float = Field(0.05, gt=0.0, le=1.0, description="fraction of day-start equity")
    price_jump_zscore: float = Field(3.0, gt=0.0, description="skip the bar when |z| of its return exceeds")
    price_jump_lookback: Annotated[int, Field(ge=5)] = 100
    max_spread: float = Field(0.005, gt=0.0, description="live: skip when (ask-bid)/mid exceeds")
    max_latency_ms: float = Field(3000.0, gt=0.0, description="live: skip when the ticker took longer")
    max_data_age_bars: float = Field(1.5, gt=0.0, description="live: skip when the last closed bar is older")


# --------------------------------------------------------------------------- ML
ModelName = Literal["lightgbm", "xgboost", "random_forest"]
SEED_MODEL_PARAMS: dict[ModelName, dict[str, float | int | str | None]] = {
    "lightgbm": {"n_estimators": 200, "learning_rate": 0.1, "max_depth": 8, "num_leaves": 31},
    "xgboost": {"n_estimators": 200, "learning_rate": 0.1, "max_depth": 8},
    "random_forest": {"n_estimators": 200, "max_depth": 12, "min_samples_leaf": 5},
}


class MLConfig(_Section):
    """The model gate: probability from the ensemble filters and scales strategy trades."""

    enabled: bool = Field(False, description="gate strategy trades with the production bundle")
    bundle_dir: str = "models/production"
    threshold: Fraction | None = Field(None, description="override the bundle's decision threshold")
    scale_size: bool = Field(True, description="scale position size by the probability")
    label: Literal["meta", "fixed_horizon", "triple_barrier"] = "meta"
    horizon_bars: PositiveInt = 16
    fixed_horizon_return: float = Field(0.003, ge=0.0, le=1.0, description="seed: next bar > +0.3 %")
    cv_splits: Annotated[int, Field(ge=2)] = 5
    embargo_bars: Annotated[int, Field(ge=0)] = 16
    seed: int = 42
    n_threads: PositiveInt = 1
    model_params: dict[ModelName, dict[str, float | int | str | None]] = Field(
        default_factory=lambda: dict(SEED_MODEL_PARAMS),
        description="hyper-parameters per model (seed §5.1); Optuna tunes them",
    )
    weights: dict[Literal["lightgbm", "xgboost", "random_forest"], Annotated[float, Field(ge=0.0)]] = {
        "lightgbm": 0.4,
        "xgboost": 0.4,
        "random_forest": 0.2,
    }


# --------------------------------------------------------------------------- live, health, notify
class LiveConfig(_Section):
    poll_seconds: PositiveFloat = Field(5.0, description="how often the loop looks for a closed bar")
    history_bars: Annotated[int, Field(ge=100)] = Field(
        1500, description="closed bars a fresh paper state warms the strategies on (≥ their warm-up: 1072 at 15m)"
    )
    state_dir: str = Field("state", description="default --state-dir: SQLite state, lock and logs")
    stop_timeout_seconds: PositiveFloat = Field(30.0, description="`stop` waits this long, then SIGKILL")
    fetch_timeout_seconds: PositiveFloat = Field(10.0, description="HTTP timeout of one exchange request")
    api_urls: dict[str, str] = Field(
        default_factory=dict, description="override ccxt API URLs by name (a mirror), e.g. {public: https://…}"
    )
    log_max_bytes: Annotated[int, Field(ge=10_000)] = Field(10_000_000, description="rotate live.log at this size")
    log_backups: Annotated[int, Field(ge=1)] = Field(5, description="rotated live.log files kept")
    reconcile_every_bars: PositiveInt = Field(
        4, description="live: full reconcile (positions, active orders, recent trades) every this many bars"
    )
    private_url: str = Field("https://api.bitbank.cc/v1", description="live: bitbank private REST API, incl. /v1")
    public_url: str = Field("https://public.bitbank.cc", description="live: bitbank public REST API (ticker)")


class HealthConfig(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    max_bar_delay_seconds: PositiveFloat = Field(120.0, description="closed bar older than tf + this → 503")


class NotifyConfig(_Section):
    """Discord alerts (cryptobot.notify): pacing, dedupe, digests; no webhook → alerts go to the log."""

    discord_webhook_url: SecretStr | None = Field(None, description="only from the environment")
    min_interval_seconds: float = Field(2.0, ge=0.0, description="at least this long between two posts")
    dedupe_cooldown_seconds: float = Field(600.0, ge=0.0, description="one alert per key per this long")
    digest_interval_seconds: float = Field(3600.0, gt=0.0, description="info alerts batched this long")
    timeout_seconds: PositiveFloat = Field(10.0, description="HTTP timeout of one webhook post")
    max_attempts: PositiveInt = Field(5, description="posts per message (429s and 5xx included) before dropping it")


class Config(_Section):
    exchange: ExchangeConfig = ExchangeConfig()
    data: DataConfig = DataConfig()
    costs: CostsConfig = CostsConfig()
    features: FeaturesConfig = FeaturesConfig()
    strategies: StrategiesConfig = StrategiesConfig()
    execution: ExecutionConfig = ExecutionConfig()
    risk: RiskConfig = RiskConfig()
    ml: MLConfig = MLConfig()
    live: LiveConfig = LiveConfig()
    health: HealthConfig = HealthConfig()
    notify: NotifyConfig = NotifyConfig()

    def public_dict(self) -> dict[str, Any]:
        """JSON-safe dict with secrets masked (set ones as '**********', unset as null)."""
        return self.model_dump(mode="json")

    def with_overrides(self, overrides: Mapping[str, Any]) -> Config:
        """A validated copy with dotted keys replaced (`{"ml.enabled": False}`); this config is unchanged."""
        tree = self.model_dump()
        for dotted, value in overrides.items():
            _set_dotted(tree, dotted, value)
        try:
            return Config.model_validate(tree)
        except ValidationError as exc:
            raise ConfigError(_problems(exc)) from None

    def config_hash(self) -> str:
        """sha256 of the effective non-secret config: identifies a run's settings in manifests."""
        data = self.public_dict()
        for key in SECRET_KEYS:
            section, name = key.split(".")
            data[section][name] = None
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


# --------------------------------------------------------------------------- loading
def _deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def _walk_keys(tree: Mapping[str, Any], prefix: str = "") -> Iterable[str]:
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        yield dotted
        if isinstance(value, Mapping):
            yield from _walk_keys(value, dotted + ".")


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError([f"{path}: config file not found"])
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: top level must be a mapping of sections, got {type(data).__name__}"])
    secrets = sorted(k for k in _walk_keys(data) if k in SECRET_KEYS)
    if secrets:
        raise ConfigError(
            [
                f"{path}: '{k}' is a secret and is read only from the environment "
                f"({ENV_PREFIX}{k.replace('.', '__').upper()}); remove it from the file"
                for k in secrets
            ]
        )
    return data


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """`CRYPTOBOT__RISK__MAX_DRAWDOWN=0.3` → {'risk': {'max_drawdown': 0.3}} (values parsed as YAML)."""
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        dotted = name[len(ENV_PREFIX) :].lower().replace("__", ".")
        value: Any = raw if dotted in SECRET_KEYS else _parse_scalar(raw)
        _set_dotted(tree, dotted, value)
    return tree


def _parse_scalar(raw: str) -> Any:
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def _allowed(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """Describe the allowed values of the field at `loc`, from its declared constraints."""
    field = None
    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            break
        field = current.model_fields.get(str(part))
        if field is None:
            break
        current = field.annotation
    if field is None:
        return ""
    bounds = []
    for meta in field.metadata:
        if isinstance(meta, Ge):
            bounds.append(f">= {meta.ge}")
        elif isinstance(meta, Gt):
            bounds.append(f"> {meta.gt}")
        elif isinstance(meta, Le):
            bounds.append(f"<= {meta.le}")
        elif isinstance(meta, Lt):
            bounds.append(f"< {meta.lt}")
    return f" (allowed: {' and '.join(bounds)})" if bounds else ""


def _leaf_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted key of the model (sections and leaves): the candidates for a spelling suggestion."""
    out = []
    for name, field in model.model_fields.items():
        out.append(prefix + name)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            out += _leaf_keys(field.annotation, f"{prefix}{name}.")
    return out


def _problems(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc) or "<root>"
        if err["type"] == "extra_forbidden":
            # never echo the value: a mistyped secret key would print the secret
            close = difflib.get_close_matches(key, _leaf_keys(Config), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else "check the spelling against config/default.yaml"
            lines.append(f"{key}: unknown key; {hint}")
            continue
        shown = "<secret>" if key in SECRET_KEYS else repr(err.get("input"))
        lines.append(f"{key}: {shown} is invalid: {err['msg']}{_allowed(Config, loc)}")
    return lines


def load_config(
    paths: Iterable[str | Path] | str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    use_default_file: bool = True,
) -> Config:
    """Build the effective config: model defaults → `config/default.yaml` → `paths` → environment → overrides.

    `overrides` maps dotted keys to values (the CLIs' `--set key=value`); they win over everything.
    Raises `ConfigError` listing every problem at once.
    """
    if paths is None:
        path_list: list[Path] = []
    elif isinstance(paths, (str, Path)):
        path_list = [Path(paths)]
    else:
        path_list = [Path(p) for p in paths]
    merged: dict[str, Any] = {}
    if use_default_file and DEFAULT_CONFIG_PATH.is_file():
        merged = _deep_merge(merged, _read_yaml(DEFAULT_CONFIG_PATH))
    for path in path_list:
        merged = _deep_merge(merged, _read_yaml(path))
    merged = _deep_merge(merged, _env_overrides(os.environ if environ is None else environ))
    for dotted, value in (overrides or {}).items():
        if dotted in SECRET_KEYS:
            raise ConfigError([f"{dotted}: secrets are read only from the environment"])
        _set_dotted(merged, dotted, _parse_scalar(value) if isinstance(value, str) else value)
    try:
        return Config.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_problems(exc)) from None


def parse_set_options(items: Iterable[str]) -> dict[str, Any]:
    """Parse CLI `--set key=value` items into a dotted-key override mapping."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError([f"--set {item!r}: expected KEY=VALUE, e.g. risk.max_drawdown=0.3"])
        out[key.strip()] = value
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m cryptobot.config show [--config FILE] [--set KEY=VALUE]`: print the effective config."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m cryptobot.config",
        description="Show the effective configuration (defaults -> YAML -> environment), secrets masked.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("show", help="print the effective config as YAML")
    show.add_argument("--config", action="append", default=[], metavar="FILE", help="YAML file(s), in order")
    show.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one key")
    show.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    from cryptobot.cli_errors import run_command

    return run_command(_show, parser.parse_args(argv))


def _show(args: Any) -> int:
    cfg = load_config(args.config, overrides=parse_set_options(args.set))
    data = cfg.public_dict()
    if args.json:
        print(dumps(data, indent=2))
    else:
        print(yaml.safe_dump(data, sort_keys=False).rstrip())
    print(f"# config hash: {cfg.config_hash()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
