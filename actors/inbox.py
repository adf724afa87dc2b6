"""Per-sender ordering for async actors: Ray may run an async actor's calls out of submission order, so
every feed message carries a sequence number and receivers apply messages strictly in that order."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class SequencedInbox(Generic[T]):
    def __init__(self) -> None:
        self._next: dict[str, int] = {}
        self._held: dict[str, dict[int, T]] = {}

    def accept(self, sender: str, seq: int, item: T) -> list[T]:
        """Hold ``item`` until every earlier message of ``sender`` is in; return what is now in order."""
        expected = self._next.setdefault(sender, 0)
        if seq < expected:
            raise ValueError(f"message {seq} from {sender} arrived twice (expected {expected})")
        held = self._held.setdefault(sender, {})
        if seq in held:
            raise ValueError(f"message {seq} from {sender} arrived twice")
        held[seq] = item
        ready = []
        while expected in held:
            ready.append(held.pop(expected))
            expected += 1
        self._next[sender] = expected
        return ready

    def waiting(self) -> int:
        return sum(len(h) for h in self._held.values())
