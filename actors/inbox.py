"""Per-sender ordering for async actors: Ray may run an async actor's calls out of submission order, so
every feed message carries a sequence number and receivers apply messages strictly in that order.

A message that arrives again (a sender resending after a restart, or Ray retrying a call whose first try
did get through) is dropped and counted: receiving is idempotent."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class SequencedInbox(Generic[T]):
    def __init__(self) -> None:
        self._next: dict[str, int] = {}
        self._held: dict[str, dict[int, T]] = {}
        self.duplicates = 0

    def accept(self, sender: str, seq: int, item: T) -> list[T]:
        """Hold ``item`` until every earlier message of ``sender`` is in; return what is now in order."""
        if seq < 0:
            raise ValueError(f"message sequence numbers start at 0, got {seq} from {sender}")
        expected = self._next.setdefault(sender, 0)
        held = self._held.setdefault(sender, {})
        if seq < expected or seq in held:
            self.duplicates += 1
            return []
        held[seq] = item
        ready = []
        while expected in held:
            ready.append(held.pop(expected))
            expected += 1
        self._next[sender] = expected
        return ready

    def next_seq(self, sender: str) -> int:
        """The sequence number this inbox waits for from ``sender`` (everything before it is applied)."""
        return self._next.get(sender, 0)

    def restore(self, next_seqs: dict[str, int]) -> None:
        """Start over from a snapshot: wait for these numbers; anything held is dropped (it will be resent)."""
        self._next = dict(next_seqs)
        self._held = {}

    def waiting(self) -> int:
        return sum(len(h) for h in self._held.values())
