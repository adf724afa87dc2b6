"""A seen-id set that forgets: per group (a route), the last ``keep`` ids.

Receivers drop repeats by id (a restarted route resends what came after its last snapshot). A set of every id
ever seen grows by one per fill or trip for as long as the engine runs, and goes into every snapshot of its
actor; repeats only ever come from a sender's recent past, so the last ``keep`` ids of each sender are enough.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


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
