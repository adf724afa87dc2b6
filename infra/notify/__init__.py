"""Alert delivery to people: channel clients, a durable outbox, and a dispatcher off the trading path."""

from .dispatcher import Notifier, build_channels, build_notifier

__all__ = ["Notifier", "build_channels", "build_notifier"]
