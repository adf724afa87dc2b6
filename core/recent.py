"""Bounded memory for long runs: a seen-id set that forgets (per group, the last ``keep`` ids) and samples
kept by their last ``keep`` with a running count.

Receivers drop repeats by id (a restarted route resends what came after its last snapshot). A set of every id
ever seen grows by one per fill or trip for as long as the engine runs, and goes into every snapshot of its
actor; repeats only ever come from a sender's recent past, so the last ``keep`` ids of each sender are enough.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping


class RecentIds:
    def __init__(self, keep: int) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.keep = keep
        self._groups: dict[str, dict[str, None]] = {}  # group -> its ids, oldest first (dicts keep order)

    def seen(self, group: str, key: str) -> bool:
        ids = self._groups.get(group)
        return ids is not None and key in ids

    def add(self, group: str, key: str) -> None:
        ids = self._groups.setdefault(group, {})
        ids[key] = None
        while len(ids) > self.keep:
            del ids[next(iter(ids))]

    def __len__(self) -> int:
        return sum(len(ids) for ids in self._groups.values())

    def to_dict(self) -> dict[str, list[str]]:
        return {g: list(ids) for g, ids in self._groups.items()}

    @classmethod
    def from_dict(cls, keep: int, groups: Mapping[str, Iterable[str]]) -> RecentIds:
        out = cls(keep)
        for g, ids in groups.items():
            for key in ids:
                out.add(g, key)
        return out


class Samples:
    """Measurements appended for as long as the engine runs (decision latencies): the last ``keep`` are kept,
    and a reader takes what is new by the running count (``since``), so nothing grows with the run."""

    def __init__(self, keep: int) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self._kept: deque[float] = deque(maxlen=keep)
        self.total = 0  # every sample ever appended

    def append(self, x: float) -> None:
        self._kept.append(x)
        self.total += 1

    def since(self, count: int) -> list[float]:
        """The samples after the first ``count`` (those still kept: a reader further behind gets the kept ones)."""
        new = self.total - count
        if new <= 0:
            return []
        return list(self._kept)[-new:] if new < len(self._kept) else list(self._kept)

    def __len__(self) -> int:
        return len(self._kept)

    def __iter__(self) -> Iterator[float]:
        return iter(self._kept)
