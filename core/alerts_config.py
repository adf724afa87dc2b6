"""Where alerts go: channels, routing by severity, and the durable outbox that carries them (infra.notify).

Secrets never live here: the config names the environment variables that hold them, because the config is
dumped into run records and reports. No channel configured = alerts go to the log only (as before).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

CHANNELS = ("telegram", "slack", "webhook", "email")


class TelegramConfig(BaseModel):
    """Telegram Bot API ``sendMessage``; configured when chat_id is set and the token variable is present."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    chat_id: str = Field("", description="chat or channel id the bot posts to (empty: channel off)")
    token_env: str = Field("ARBITRAGE_TELEGRAM_TOKEN", description="environment variable holding the bot token")
    api_base: str = Field("https://api.telegram.org", description="Bot API base URL (a local server in tests)")


class SlackConfig(BaseModel):
    """Slack incoming webhook; the webhook URL is itself the credential, so it is read from the environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(False, description="post to the Slack incoming webhook named by url_env")
    url_env: str = Field("ARBITRAGE_SLACK_WEBHOOK_URL", description="environment variable holding the webhook URL")


class WebhookConfig(BaseModel):
    """A generic JSON webhook (2xx = delivered); each notice carries an Idempotency-Key header."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field("", description="URL the notice JSON is POSTed to (empty: channel off)")


class EmailConfig(BaseModel):
    """SMTP; STARTTLS and login are optional (a local relay needs neither)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field("", description="SMTP server host (empty: channel off)")
    port: int = Field(587, gt=0, lt=65536, description="SMTP server port")
    starttls: bool = Field(True, description="upgrade the connection with STARTTLS before sending")
    username: str = Field("", description="SMTP login user (empty: no login)")
    password_env: str = Field("ARBITRAGE_SMTP_PASSWORD", description="environment variable holding the SMTP "
                              "password (used when username is set)")
    sender: str = Field("arbitrage-lite@localhost", description="From address")
    to: tuple[str, ...] = Field((), description="recipient addresses (JSON list)")


class QueueConfig(BaseModel):
    """The outbox: every routed alert is written here before anything is sent, so an outage loses nothing."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: str = Field("file", pattern="^(file|redis)$", description="file (append-only JSONL, fsync'd) or "
                         "redis (a stream)")
    path: str = Field("var/alerts/outbox.jsonl", description="file backend: the outbox log")
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="redis backend: server")
    redis_key: str = Field("arbitrage-lite:alerts:outbox", description="redis backend: stream key")
    fsync: bool = Field(True, description="file backend: fsync every record (off only for throwaway runs)")
    max_bytes: int = Field(8 << 20, gt=0, description="file backend: compact the log past this size (bytes)")
    max_pending: int = Field(10_000, gt=0, description="raw alerts held uncomposed; past it a new alert folds "
                             "into its rule's newest pending one (counted, not dropped)")
    max_dead: int = Field(1_000, gt=0, description="dead letters kept (oldest dropped first)")


class AlertsConfig(BaseModel):
    """Alert delivery (infra.notify): routing by severity, de-duplication, burst aggregation, per-rule
    throttling, retries with capped exponential backoff, and a dead-letter queue."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    telegram: TelegramConfig = TelegramConfig()
    slack: SlackConfig = SlackConfig()
    webhook: WebhookConfig = WebhookConfig()
    email: EmailConfig = EmailConfig()
    queue: QueueConfig = QueueConfig()
    route_p0: tuple[str, ...] = Field(CHANNELS, description="channels a P0 goes to (those configured)")
    route_p1: tuple[str, ...] = Field(("slack", "webhook"), description="channels a P1 goes to")
    route_p2: tuple[str, ...] = Field((), description="channels a P2 goes to (empty: log only)")
    route_p3: tuple[str, ...] = Field((), description="channels a P3 goes to (empty: log only)")
    dedup_s: float = Field(60.0, ge=0, description="an alert with the rule and subject of one queued less "
                           "than this ago is dropped (remembered across restarts)")
    aggregate_s: float = Field(2.0, ge=0, description="a rule's alerts arriving within this of its first "
                               "pending one become one message 'rule x N, first/last'")
    throttle_s: float = Field(30.0, ge=0, description="at most one message per rule this often; alerts "
                              "meanwhile join the next one")
    retry_base_s: float = Field(1.0, gt=0, description="first retry delay; doubles per attempt")
    retry_cap_s: float = Field(60.0, gt=0, description="retry delay cap")
    retry_jitter: float = Field(0.2, ge=0, le=1, description="retry delay x (1 + U(0, jitter)) from a "
                                "seeded generator")
    max_attempts: int = Field(30, gt=0, description="attempts per channel before a message is dead-lettered")
    timeout_s: float = Field(10.0, gt=0, description="one send attempt's timeout")
    poll_s: float = Field(0.2, gt=0, description="dispatcher wake-up when idle")
    seed: int = Field(0, description="jitter generator seed")

    @model_validator(mode="after")
    def _known_channels(self) -> AlertsConfig:
        for sev, chans in self.routes().items():
            unknown = sorted(set(chans) - set(CHANNELS))
            if unknown:
                raise ValueError(f"alerts.route_p{sev}: unknown channels {unknown}; known {list(CHANNELS)}")
        return self

    def anchored(self) -> AlertsConfig:
        """The outbox path made absolute here (the driver): an actor process may run in another directory."""
        path = str(Path(self.queue.path).expanduser().resolve())
        return self.model_copy(update={"queue": self.queue.model_copy(update={"path": path})})

    def routes(self) -> dict[int, tuple[str, ...]]:
        return {0: self.route_p0, 1: self.route_p1, 2: self.route_p2, 3: self.route_p3}
