"""Venue API credentials from the environment or a private file outside the repository; never shown.

Sources, in order: a file named by the caller (a CLI ``--secrets-file``) or by ``$ARBITRAGE_SECRETS_FILE``, else
the environment variables themselves. The file holds ``NAME=value`` lines with the same names as the variables
(``#`` comments and blank lines allowed). A file inside the repository tree (it could be committed) or readable
by others (mode ``& 0o007``) is refused with an error saying what to do; errors never quote a value.
The secret lives in a :class:`Secret` whose ``repr``/``str``/``format`` are masked and which refuses pickling
(it must not travel into Ray's object store or a log): load it in the process that signs, call ``reveal()``
only at the signing call.
"""

from __future__ import annotations

import hmac
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
FILE_VAR = "ARBITRAGE_SECRETS_FILE"
NAMES = {  # venue -> (key variable, secret variable)
    "binance": ("ARBITRAGE_BINANCE_KEY", "ARBITRAGE_BINANCE_SECRET"),
    "upbit": ("ARBITRAGE_UPBIT_ACCESS_KEY", "ARBITRAGE_UPBIT_SECRET_KEY"),
}
MASK = "Secret(***)"


class SecretsError(ValueError):
    """Credentials missing or stored unsafely; the message names the variable or file, never a value."""


class Secret:
    """A string that does not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise SecretsError("a secret must be a non-empty string")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return MASK

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(Secret)

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a Secret is not pickled: load it where it is used")


def as_secret(v: str | Secret) -> Secret:
    return v if isinstance(v, Secret) else Secret(v)


@dataclass(frozen=True, slots=True)
class Credentials:
    venue: str
    key: str  # the API (access) key: sent in headers, still not shown
    secret: Secret
    source: str  # "environment" or the file's path

    def __repr__(self) -> str:
        return f"Credentials({self.venue!r}, key=<{len(self.key)} chars>, secret={MASK}, source={self.source!r})"

    __str__ = __repr__


def check_file(path: Path, repo_root: Path = REPO_ROOT) -> Path:
    """The resolved path if it is a private regular file outside the repository, else a SecretsError."""
    p = Path(path).expanduser().resolve()
    if p.is_relative_to(repo_root.resolve()):
        raise SecretsError(f"secrets file {p} is inside the repository ({repo_root}): move it outside the tree "
                           "(e.g. ~/.config/arbitrage-lite/secrets) so it can never be committed")
    try:
        st = p.stat()
    except OSError as e:
        raise SecretsError(f"secrets file {p}: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise SecretsError(f"secrets file {p} is not a regular file")
    if st.st_mode & 0o007:
        raise SecretsError(f"secrets file {p} is accessible by other users (mode {stat.filemode(st.st_mode)}): "
                           f"chmod 600 {p}")
    return p


def read_file(path: Path, repo_root: Path = REPO_ROOT) -> dict[str, str]:
    p = check_file(path, repo_root)
    out: dict[str, str] = {}
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise SecretsError(f"secrets file {p} line {n}: expected NAME=value")  # the line may hold a secret
        out[name.strip()] = value.strip().strip("'\"")
    return out


def load(venue: str, *, path: str | Path | None = None, env: Mapping[str, str] | None = None,
         repo_root: Path = REPO_ROOT) -> Credentials:
    """One venue's credentials (see the module doc for the sources and the refusals)."""
    if venue not in NAMES:
        raise SecretsError(f"no credentials defined for venue {venue!r} (known: {', '.join(sorted(NAMES))})")
    env = os.environ if env is None else env
    key_var, secret_var = NAMES[venue]
    file = path if path is not None else env.get(FILE_VAR) or None
    if file is not None:
        values, source = read_file(Path(file), repo_root), str(Path(file).expanduser().resolve())
    else:
        values, source = dict(env), "environment"
    missing = [v for v in (key_var, secret_var) if not values.get(v)]
    if missing:
        where = f"secrets file {source}" if file is not None else f"the environment (or a file via ${FILE_VAR})"
        raise SecretsError(f"{venue} credentials: {', '.join(missing)} not set in {where}")
    return Credentials(venue, values[key_var], Secret(values[secret_var]), source)
