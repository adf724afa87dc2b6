"""Version-controlled journal schema: ``NNNN_name.sql`` for PostgreSQL, ``NNNN_name.sqlite.sql`` for SQLite.

Each backend's migrator applies the files it has not applied yet, in version order, in one transaction, and
records (version, name, checksum) in ``schema_migrations``. An applied file must never change (checked).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DIRECTORY = Path(__file__).parent
_FILE = re.compile(r"(\d{4})_([a-z0-9_]+?)(\.sqlite)?\.sql")


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load(dialect: Literal["postgres", "sqlite"], directory: Path = DIRECTORY) -> list[Migration]:
    found: dict[int, Migration] = {}
    for path in directory.glob("*.sql"):
        m = _FILE.fullmatch(path.name)
        if m is None or (m.group(3) is not None) != (dialect == "sqlite"):
            continue
        version = int(m.group(1))
        if version in found:
            raise MigrationError(f"two {dialect} migrations numbered {version}")
        found[version] = Migration(version, m.group(2), path.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def pending(applied: Mapping[int, str], migrations: Iterable[Migration]) -> list[Migration]:
    """The migrations not applied yet. ``applied``: version -> checksum, from ``schema_migrations``."""
    out = []
    for m in migrations:
        if m.version not in applied:
            out.append(m)
        elif applied[m.version] != m.checksum:
            raise MigrationError(f"migration {m.version:04d}_{m.name} changed after it was applied")
    return out
