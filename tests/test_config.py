"""Typed config: load order, every failure mode's message, and secrets never leaking."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cryptobot.config import DEFAULT_CONFIG_PATH, Config, ConfigError, load_config, parse_set_options

ROOT = Path(__file__).resolve().parent.parent
SECRET = "sk-live-0123456789abcdef"
WEBHOOK = "https://discord.com/api/webhooks/123456789012345678/very-secret-token"


def write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_are_the_seeds_effective_values() -> None:
    cfg = load_config(environ={})
    # seed spec §7.1 DEFAULT_RISK_CONFIG (the effective one), §4.3 thresholds, §5.3 ensemble weights
    assert cfg.risk.kelly.safety_factor == 0.7
    assert cfg.risk.kelly.max_position_ratio == 0.10
    assert cfg.risk.kelly.min_trades == 20
    assert cfg.risk.max_drawdown == 0.20
    assert cfg.risk.consecutive_loss_limit == 5
    assert cfg.risk.cooldown_hours == 24
    assert cfg.strategies.atr_based.bb_overbought == 0.7
    assert cfg.strategies.atr_based.rsi_oversold == 35
    assert cfg.strategies.adx_trend_strength.strong_trend_threshold == 25
    assert cfg.ml.weights == {"lightgbm": 0.4, "xgboost": 0.4, "random_forest": 0.2}
    assert cfg.exchange.symbol == "BTC/JPY"


def test_default_yaml_mirrors_the_model_exactly() -> None:
    """config/default.yaml holds every non-secret key with the model's default (no dead, no missing keys)."""
    on_disk = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    model = Config().public_dict()
    for section, key in (("exchange", "api_key"), ("exchange", "api_secret"), ("notify", "discord_webhook_url")):
        del model[section][key]
    assert on_disk == model


def test_load_order_defaults_yaml_env_overrides(tmp_path: Path) -> None:
    first = write(tmp_path, "risk:\n  max_drawdown: 0.3\n  consecutive_loss_limit: 7\n", "a.yaml")
    second = write(tmp_path, "risk:\n  max_drawdown: 0.35\n", "b.yaml")
    env = {"CRYPTOBOT__RISK__CONSECUTIVE_LOSS_LIMIT": "9", "CRYPTOBOT__COSTS__TAKER_FEE": "0.0012"}
    cfg = load_config([first, second], environ=env)
    assert cfg.risk.max_drawdown == 0.35  # later file wins
    assert cfg.risk.consecutive_loss_limit == 9  # environment wins over files
    assert cfg.costs.taker_fee == 0.0012
    cfg = load_config([first], environ=env, overrides={"risk.max_drawdown": "0.4"})
    assert cfg.risk.max_drawdown == 0.4  # --set wins over everything


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "risk:\n  max_drawdwn: 0.3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert err.value.problems == [
        "risk.max_drawdwn: unknown key; did you mean risk.max_drawdown?"
    ]


def test_wrong_type_names_key_and_value(tmp_path: Path) -> None:
    path = write(tmp_path, "risk:\n  consecutive_loss_limit: many\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    (line,) = err.value.problems
    assert line.startswith("risk.consecutive_loss_limit: 'many' is invalid:")
    assert "integer" in line


def test_out_of_range_names_allowed_range(tmp_path: Path) -> None:
    path = write(tmp_path, "risk:\n  max_drawdown: 1.5\ncosts:\n  taker_fee: -0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert len(err.value.problems) == 2  # one message per problem, all at once
    drawdown = next(p for p in err.value.problems if p.startswith("risk.max_drawdown"))
    assert "1.5" in drawdown and "allowed: > 0.0 and <= 0.9" in drawdown
    fee = next(p for p in err.value.problems if p.startswith("costs.taker_fee"))
    assert "-0.1" in fee and ">= 0.0" in fee


def test_bad_choice_and_cross_field_rule(tmp_path: Path) -> None:
    path = write(tmp_path, "strategies:\n  combiner:\n    method: median\nfeatures:\n  macd_fast: 30\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    text = str(err.value)
    assert "strategies.combiner.method: 'median' is invalid" in text
    assert "'weighted_sum'" in text and "'average_confidence'" in text
    assert "macd_fast (30) must be below macd_slow (26)" in text


def test_file_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml", environ={})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "risk: [unclosed\n"), environ={})
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"), environ={})
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_set_options(["risk.max_drawdown"])


def test_secret_in_yaml_is_refused_without_echoing_it(tmp_path: Path) -> None:
    path = write(tmp_path, f"exchange:\n  api_key: {SECRET}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert "read only from the environment" in str(err.value)
    assert "CRYPTOBOT__EXCHANGE__API_KEY" in str(err.value)
    assert SECRET not in str(err.value)


def test_secret_as_cli_override_is_refused() -> None:
    with pytest.raises(ConfigError, match="secrets are read only from the environment"):
        load_config(environ={}, overrides={"exchange.api_secret": SECRET})


def test_secrets_from_environment_are_masked_everywhere(caplog: pytest.LogCaptureFixture) -> None:
    env = {
        "CRYPTOBOT__EXCHANGE__API_KEY": SECRET,
        "CRYPTOBOT__EXCHANGE__API_SECRET": SECRET + "x",
        "CRYPTOBOT__NOTIFY__DISCORD_WEBHOOK_URL": WEBHOOK,
    }
    cfg = load_config(environ=env)
    assert cfg.exchange.api_key is not None and cfg.exchange.api_key.get_secret_value() == SECRET
    assert cfg.notify.discord_webhook_url is not None
    assert cfg.notify.discord_webhook_url.get_secret_value() == WEBHOOK
    logging.getLogger("cryptobot.test").warning("config: %s %r", cfg, cfg)
    texts = [repr(cfg), str(cfg), json.dumps(cfg.public_dict()), str(cfg.model_dump()), caplog.text]
    for text in texts:
        assert SECRET not in text and "very-secret-token" not in text
    assert cfg.public_dict()["exchange"]["api_key"] == "**********"
    # the config hash ignores secrets, so reports never depend on (or leak) them
    assert cfg.config_hash() == load_config(environ={}).config_hash()


def test_invalid_secret_value_is_not_echoed() -> None:
    env = {"CRYPTOBOT__EXCHANGE__LEVERAGE": "5", "CRYPTOBOT__EXCHANGE__API_KEY": SECRET}
    with pytest.raises(ConfigError) as err:
        load_config(environ=env)
    assert "exchange.leverage: 5 is invalid" in str(err.value)
    assert SECRET not in str(err.value)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cryptobot.config", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        check=False,
    )


def test_show_cli_prints_effective_config_masked(tmp_path: Path) -> None:
    path = write(tmp_path, "risk:\n  max_drawdown: 0.25\n")
    result = run_cli("show", "--config", str(path), env={"CRYPTOBOT__EXCHANGE__API_KEY": SECRET})
    assert result.returncode == 0, result.stderr
    shown = yaml.safe_load(result.stdout)
    assert shown["risk"]["max_drawdown"] == 0.25
    assert shown["exchange"]["api_key"] == "**********"
    assert SECRET not in result.stdout + result.stderr


def test_show_cli_reports_problems_with_exit_code(tmp_path: Path) -> None:
    path = write(tmp_path, "risk:\n  max_drawdown: 3\n  bogus: 1\n")
    result = run_cli("show", "--config", str(path))
    assert result.returncode == 2
    assert "risk.max_drawdown: 3 is invalid" in result.stderr
    assert "risk.bogus: unknown key" in result.stderr


def test_mistyped_secret_key_is_named_not_echoed() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(environ={"CRYPTOBOT__EXCHANGE__APISECRET": "sk-marker-123"})
    assert "sk-marker-123" not in str(err.value)
    assert "exchange.apisecret" in str(err.value) and "did you mean exchange.api_secret?" in str(err.value)
