"""HTTP alert channels: Telegram Bot API, Slack incoming webhook, generic JSON webhook.

Each turns a venue-like answer into an :class:`Outcome` the dispatcher acts on: delivered, retry (after the
server's own ``retry_after`` / ``Retry-After`` when it gives one), or a permanent failure (dead-lettered: a
wrong chat id or a revoked webhook will not heal by retrying). Outcome details never hold a secret: the bot
token and the Slack URL are credentials, so errors name the exception type and status, never the URL.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

import aiohttp

from ..venues.secrets import Secret

OK: Final = "ok"
RETRY: Final = "retry"
FAIL: Final = "fail"
Kind = Literal["ok", "retry", "fail"]


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: Kind
    retry_after_s: float | None = None  # the server's own wait, honoured as given
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Notice:
    """One message to deliver: a single alert, or a burst of one rule aggregated."""

    id: int
    rule: str
    severity: int
    key: str
    text: str
    count: int
    first_ns: int
    last_ns: int

    def subject(self) -> str:
        many = f" x {self.count}" if self.count > 1 else ""
        return f"[P{self.severity}] {self.rule}{many} ({self.key})"

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "rule": self.rule, "severity": f"P{self.severity}", "key": self.key,
                "text": self.text, "count": self.count, "first_ns": self.first_ns, "last_ns": self.last_ns}


class Channel(Protocol):
    name: str

    async def send(self, session: aiohttp.ClientSession, notice: Notice) -> Outcome: ...


def _retry_after(value: Any) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def classify_http(status: int, retry_after: Any = None, detail: str = "") -> Outcome:
    """The common HTTP reading: 2xx delivered; 429 / 408 / 5xx retried (honouring Retry-After); any other
    4xx is the request or the credential being wrong: permanent."""
    if 200 <= status < 300:
        return Outcome(OK, None, detail)
    if status in (408, 429) or status >= 500:
        return Outcome(RETRY, _retry_after(retry_after), f"HTTP {status} {detail}".strip())
    return Outcome(FAIL, None, f"HTTP {status} {detail}".strip())


def classify_telegram(status: int, body: Any) -> Outcome:
    """Bot API answers ``{"ok": true, ...}`` or ``{"ok": false, "error_code": n, "description": ...,
    "parameters": {"retry_after": s}}``; the error code mirrors the HTTP status."""
    if isinstance(body, dict) and body.get("ok") is True and status == 200:
        return Outcome(OK)
    code = body.get("error_code", status) if isinstance(body, dict) else status
    params = body.get("parameters") if isinstance(body, dict) else None
    after = params.get("retry_after") if isinstance(params, dict) else None
    desc = str(body.get("description", ""))[:200] if isinstance(body, dict) else ""
    code = int(code) if isinstance(code, int) else status
    if 200 <= code < 300:  # ok:false with a 2xx code is not a delivery
        return Outcome(RETRY, None, f"telegram ok=false {desc}".strip())
    return classify_http(code, after, desc)


def classify_slack(status: int, text: str, retry_after: Any) -> Outcome:
    """Incoming webhooks answer ``ok``; errors are plain text (``invalid_payload``, ``no_service``,
    ``channel_is_archived``) with a 4xx (permanent), 429 with Retry-After, or 5xx."""
    if status == 200 and text.strip() == "ok":
        return Outcome(OK)
    if status == 200:  # a 200 that is not "ok" is an error the service reported in the body
        return Outcome(FAIL, None, f"slack {text.strip()[:100]}")
    return classify_http(status, retry_after, text.strip()[:100])


def network_failure(exc: BaseException) -> Outcome:
    """No answer (refused, reset, timeout): the channel is down, retry later. The type only: an aiohttp
    error's text can quote the URL, which for Telegram and Slack holds the credential."""
    return Outcome(RETRY, None, type(exc).__name__)


TELEGRAM_MAX_CHARS = 4096  # sendMessage's text limit
NETWORK_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


class TelegramChannel:
    name = "telegram"

    def __init__(self, api_base: str, token: Secret, chat_id: str, timeout_s: float) -> None:
        self._base, self._token, self._chat = api_base.rstrip("/"), token, chat_id
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def send(self, session: aiohttp.ClientSession, notice: Notice) -> Outcome:
        url = f"{self._base}/bot{self._token.reveal()}/sendMessage"
        text = f"{notice.subject()}\n{notice.text}"
        if len(text) > TELEGRAM_MAX_CHARS:  # longer is refused with a 400 (permanent): cut, say so
            text = text[: TELEGRAM_MAX_CHARS - 20] + "\n... (cut)"
        payload = {"chat_id": self._chat, "text": text,
                   "disable_web_page_preview": True}
        try:
            async with session.post(url, json=payload, timeout=self._timeout) as resp:
                raw = await resp.text()
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                return classify_telegram(resp.status, body)
        except NETWORK_ERRORS as exc:
            return network_failure(exc)


class SlackChannel:
    name = "slack"

    def __init__(self, url: Secret, timeout_s: float) -> None:
        self._url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def send(self, session: aiohttp.ClientSession, notice: Notice) -> Outcome:
        payload = {"text": f"*{notice.subject()}*\n{notice.text}"}
        try:
            async with session.post(self._url.reveal(), json=payload, timeout=self._timeout) as resp:
                return classify_slack(resp.status, await resp.text(), resp.headers.get("Retry-After"))
        except NETWORK_ERRORS as exc:
            return network_failure(exc)


class WebhookChannel:
    name = "webhook"

    def __init__(self, url: str, timeout_s: float, origin: str) -> None:
        self._url, self._origin = url, origin
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def send(self, session: aiohttp.ClientSession, notice: Notice) -> Outcome:
        # the receiver can drop a redelivery (a crash between its 2xx and our record of it) by this key
        headers = {"Idempotency-Key": f"{self._origin}:{notice.id}"}
        try:
            async with session.post(self._url, json=notice.as_json(), headers=headers,
                                    timeout=self._timeout) as resp:
                text = await resp.text()
                return classify_http(resp.status, resp.headers.get("Retry-After"), text.strip()[:100])
        except NETWORK_ERRORS as exc:
            return network_failure(exc)
