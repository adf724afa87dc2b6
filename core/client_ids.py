"""Client order ids, made and recorded before an order is sent, and never handed out twice.

An id is ``<prefix>-<run_id>-<seq base 36>-<route>-<leg>``, at most 36 characters of ``[A-Za-z0-9-]``: valid as
an Upbit ``identifier`` (never reusable, not even after a failed request) and as a Binance
``newClientOrderId`` (``^[.A-Z:/a-z0-9_-]{1,36}$``). It depends only on its inputs and the sequence number,
so a replay of a run gives the same ids. Uniqueness across runs rests on ``run_id``: give every run (live
or paper) a new one. After a crash, restore the sequence from the highest id in the journal
(``parse_client_id``), not from an older snapshot: on Upbit an id sent once is burnt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,36}")  # both venues accept these
_PREFIX = re.compile(r"[A-Za-z0-9]{1,4}")
_RUN_ID = re.compile(r"[A-Za-z0-9]{1,8}")
_ROUTE = re.compile(r"[A-Za-z0-9]{1,8}")
_LEG = re.compile(r"[A-Za-z0-9]{1,4}")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
MAX_SEQ = 36**8 - 1  # 8 base-36 digits: 2.8e12 ids per run; the longest id is then exactly 36 characters


class DuplicateClientId(ValueError):
    """The factory was asked for an id it already handed out (a restore went backwards)."""


def _check(kind: str, pattern: re.Pattern[str], value: str) -> None:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise ValueError(f"{kind} must match {pattern.pattern} (ASCII letters and digits only), got {value!r}")


def _base36(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _DIGITS[r] + out
        if n == 0:
            return out


def format_client_id(prefix: str, run_id: str, seq: int, route: str, leg: str) -> str:
    """The id for one sequence number: a pure function of its arguments."""
    _check("prefix", _PREFIX, prefix)
    _check("run_id", _RUN_ID, run_id)
    _check("route", _ROUTE, route)
    _check("leg", _LEG, leg)
    if not 0 < seq <= MAX_SEQ:
        raise ValueError(f"sequence {seq} is outside 1..{MAX_SEQ}: start a new run id")
    return f"{prefix}-{run_id}-{_base36(seq)}-{route}-{leg}"


@dataclass(frozen=True, slots=True)
class ParsedClientId:
    prefix: str
    run_id: str
    seq: int
    route: str
    leg: str


def parse_client_id(client_id: str) -> ParsedClientId | None:
    """The parts of an id this module made, or None (an order we did not place: tag it external)."""
    parts = client_id.split("-")
    if len(parts) != 5 or any(p == "" for p in parts) or not all(c in _DIGITS for c in parts[2]):
        return None
    prefix, run_id, seq, route, leg = parts
    try:
        if format_client_id(prefix, run_id, int(seq, 36), route, leg) != client_id:
            return None  # e.g. a leading zero in the sequence
    except ValueError:
        return None
    return ParsedClientId(prefix, run_id, int(seq, 36), route, leg)


class ClientIdFactory:
    """Hands out ids in sequence (1, 2, ...). ``state()`` is the last sequence used; ``restore`` sets it.

    Every id handed out is remembered (``seen``), and so is the highest sequence used: after a ``restore``
    that went backwards, ``next`` raises ``DuplicateClientId`` rather than use a sequence number again (with
    any route or leg), and leaves the factory as it was.
    """

    def __init__(self, run_id: str, prefix: str = "al") -> None:
        _check("run_id", _RUN_ID, run_id)
        _check("prefix", _PREFIX, prefix)
        self.run_id, self.prefix = run_id, prefix
        self._seq = 0
        self._high = 0  # highest sequence handed out by this factory
        self._issued: set[str] = set()

    def next(self, route: str, leg: str) -> str:
        seq = self._seq + 1
        client_id = format_client_id(self.prefix, self.run_id, seq, route, leg)
        if seq <= self._high or client_id in self._issued:
            raise DuplicateClientId(f"sequence {seq} ({client_id}) was already used in this process; "
                                    f"restore to {self._high} or later")
        self._seq = self._high = seq
        self._issued.add(client_id)
        return client_id

    def seen(self, client_id: str) -> bool:
        """Whether this factory already handed out ``client_id``."""
        return client_id in self._issued

    def state(self) -> int:
        return self._seq

    def restore(self, seq: int) -> None:
        """Continue after sequence ``seq`` (the next id uses ``seq + 1``)."""
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < MAX_SEQ:
            raise ValueError(f"sequence to restore must be an int in 0..{MAX_SEQ - 1}, got {seq!r}")
        self._seq = seq
