"""Alerts: Discord webhook (critical / warning / info digests) or, without a webhook, the log."""

from cryptobot.notify.discord import Notifier, format_daily_summary

__all__ = ["Notifier", "format_daily_summary"]
