"""SMTP alert channel: smtplib in a worker thread (it blocks; the dispatcher's loop must not).

SMTP reply codes decide: 4xx is transient (greylisting, a full queue: retry), 5xx is permanent (a refused
recipient or a failed login will fail again), no answer is an outage (retry).
"""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage

import aiohttp

from ..venues.secrets import Secret
from .channels import FAIL, OK, RETRY, Notice, Outcome


def classify_smtp_code(code: int, what: str) -> Outcome:
    if 400 <= code < 500:
        return Outcome(RETRY, None, f"SMTP {code} {what}")
    return Outcome(FAIL, None, f"SMTP {code} {what}")


class EmailChannel:
    name = "email"

    def __init__(self, host: str, port: int, sender: str, to: tuple[str, ...], timeout_s: float, *,
                 starttls: bool = False, username: str = "", password: Secret | None = None) -> None:
        self._host, self._port, self._sender, self._to = host, port, sender, to
        self._timeout, self._starttls = timeout_s, starttls
        self._user, self._password = username, password

    def _message(self, notice: Notice) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"], msg["From"], msg["To"] = notice.subject(), self._sender, ", ".join(self._to)
        msg.set_content(notice.text)
        return msg

    def _send_blocking(self, notice: Notice) -> Outcome:
        try:
            with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as smtp:
                if self._starttls:
                    smtp.starttls()
                if self._user and self._password is not None:
                    smtp.login(self._user, self._password.reveal())
                refused = smtp.send_message(self._message(notice))
        except smtplib.SMTPRecipientsRefused as exc:  # every recipient refused
            code = min(c for c, _ in exc.recipients.values())
            return classify_smtp_code(code, "recipients refused")
        except smtplib.SMTPResponseException as exc:  # sender refused, data refused, auth failed, ...
            return classify_smtp_code(exc.smtp_code, type(exc).__name__)
        except (smtplib.SMTPException, OSError) as exc:  # no answer, connection lost, no STARTTLS
            return Outcome(RETRY, None, type(exc).__name__)
        if refused:  # some recipients took it: resending would duplicate it to them
            return Outcome(OK, None, f"refused by {len(refused)} of {len(self._to)} recipients")
        return Outcome(OK)

    async def send(self, session: aiohttp.ClientSession, notice: Notice) -> Outcome:
        return await asyncio.to_thread(self._send_blocking, notice)
