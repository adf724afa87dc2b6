"""Checks of every CLI input, made before anything expensive starts (kernel imports, store loading, Ray).

Each check raises ``UsageError`` with one line that says what is wrong and, where it can, what to do; the
CLI prints it as ``arbitrage-lite: error: ...`` and exits 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .core.client_ids import _RUN_ID
from .core.config import EngineConfig
from .errors import UserError

PROG = "arbitrage-lite"
MAX_MESSAGE = 600  # characters of one error line


class UsageError(UserError):
    """A bad command line: one line on stderr, exit 2."""


def one_line(text: object) -> str:
    """``text`` as one line (newlines and runs of blanks collapsed), cut to a readable length."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= MAX_MESSAGE else flat[: MAX_MESSAGE - 3] + "..."


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the usage block is for ``--help``, not for every typo."""

    def error(self, message: str) -> Any:
        raise UsageError(f"{message} (see '{self.prog} --help')")


# ---- argparse types (run while parsing: cheap)
def count(minimum: int) -> Callable[[str], int]:
    """A whole number >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if n < minimum:
            raise argparse.ArgumentTypeError(f"{n} is below {minimum}")
        return n
    return parse


def finite(lo: float, hi: float, what: str) -> Callable[[str], float]:
    """A finite number in the open interval (lo, hi)."""

    def parse(text: str) -> float:
        try:
            x = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not lo < x < hi:  # false for NaN too
            raise argparse.ArgumentTypeError(f"{text} is not {what}")
        return x
    return parse


def window_ms(text: str) -> float:
    """A window of market time in ms, at least 1 ns."""
    try:
        ms = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of milliseconds") from None
    if not (1e-6 <= ms < 1e12):  # false for NaN too
        raise argparse.ArgumentTypeError(f"{text} ms is not a usable window (from 0.000001 ms, finite)")
    return ms


def speed(text: str) -> float | None:
    """'max' (None: as fast as possible) or a positive finite multiple of market time."""
    if text.strip().lower() == "max":
        return None
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither 'max' nor a number") from None
    if not (x > 0 and math.isfinite(x)):
        raise argparse.ArgumentTypeError(f"{text} is not a positive finite multiple of market time (or 'max')")
    return x


def port(text: str) -> int:
    n = count(0)(text)
    if n > 65535:
        raise argparse.ArgumentTypeError(f"{n} is not a TCP port (0-65535; 0 picks a free one)")
    return n


def run_id(text: str) -> str:
    """The run id pattern every layer accepts (client order ids embed it: letters and digits, <= 8)."""
    if _RUN_ID.fullmatch(text) is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a run id: 1 to 8 letters or digits (e.g. run2024); it "
                                         "goes into client order ids and snapshot keys")
    return text


_SYMBOL = re.compile(r"[A-Za-z0-9]{1,20}")


def routes(text: str) -> str:
    """``BTC,ETH`` or ``top:N``: the syntax only (which routes the store has is the store's answer)."""
    spec = text.strip()
    if spec.lower().startswith("top:"):
        n = spec[4:]
        if not n.isdigit() or int(n) < 1:
            raise argparse.ArgumentTypeError(f"{text!r}: expected top:N with N a positive whole number")
        return spec
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r}: empty route spec: give symbols (BTC,ETH) or top:N")
    bad = [s for s in names if _SYMBOL.fullmatch(s) is None]
    if bad:
        raise argparse.ArgumentTypeError(f"{text!r}: expected symbols like BTC,ETH or top:N (bad: "
                                         f"{', '.join(repr(b) for b in bad)})")
    return spec


def redis_url(text: str) -> str:
    if not re.match(r"(redis|rediss|unix)://", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a Redis URL (redis://HOST:PORT/DB)")
    return text


# ---- checks of paths and values (run by the commands before they import anything heavy)
def parse_time(text: str | None, flag: str = "--from") -> int | None:
    """ISO date or date-time, UTC (a trailing Z is allowed) -> ns."""
    if text is None:
        return None
    import numpy as np

    try:
        ns = int(np.datetime64(text.strip().rstrip("Zz"), "ns").astype(np.int64))
    except ValueError:
        raise UsageError(f"{flag}: cannot read time {text!r}: use ISO form like 2024-12-01 or 2024-12-01T09:30"
                         ) from None
    if ns == np.iinfo(np.int64).min:  # NaT
        raise UsageError(f"{flag}: {text!r} is not a time")
    return ns


def time_range(start: str | None, end: str | None) -> tuple[int | None, int | None]:
    """--from/--to as ns; an empty or reversed range is named as such (not found missing later)."""
    lo, hi = parse_time(start, "--from"), parse_time(end, "--to")
    if lo is not None and hi is not None and lo >= hi:
        word = "empty" if lo == hi else "reversed"
        raise UsageError(f"--from {start} is not before --to {end}: the time range is {word}")
    return lo, hi


def _writable_parent(path: Path, flag: str) -> None:
    """The nearest existing ancestor of ``path`` is a directory we may write into."""
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"{flag} {path}: {parent} is a file, not a directory")
            if not os.access(parent, os.W_OK):
                raise UsageError(f"{flag} {path}: cannot write into {parent} (permission denied)")
            return


def output_dir(text: str, flag: str = "--out") -> Path:
    """A directory to write into: new, or an existing directory; never an existing file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} is an existing file: give a directory")
    if path.is_dir() and not os.access(path, os.W_OK):
        raise UsageError(f"{flag} {path}: cannot write into it (permission denied)")
    _writable_parent(path, flag)
    return path


def existing_store(text: str, flag: str = "--store") -> Path:
    path = Path(text)
    if not path.exists():
        raise UsageError(f"{flag} {path} does not exist: run 'arbitrage-lite data import FILE... --store {path}' "
                         "first")
    if not path.is_dir():
        raise UsageError(f"{flag} {path} is a file, not a store directory (made by 'arbitrage-lite data import')")
    return path


def shared_data(text: str | None) -> Path:
    """The shared data set the demo builds its sample from: ``--data``, ``$ARBITRAGE_LITE_DATA`` or
    ``../shared/data`` (only the sample's MIT file ships, the rest is cut out of this)."""
    from .infra.data.sample import find_shared_data, not_found_message

    explicit = None if text is None else Path(text)
    found = find_shared_data(explicit)
    if found is None:
        raise UsageError(not_found_message(explicit))
    return found


def input_files(names: list[str]) -> list[Path]:
    out = []
    for name in names:
        path = Path(name)
        if not path.exists():
            raise UsageError(f"{path} does not exist")
        if path.is_dir():
            raise UsageError(f"{path} is a directory: give the files in it (e.g. {path}/*.csv.gz)")
        if not os.access(path, os.R_OK):
            raise UsageError(f"{path}: cannot read it (permission denied)")
        out.append(path)
    return out


def load_config(text: str | None) -> EngineConfig:
    """The engine config of a TOML or JSON file (only the fields it changes), checked by the models."""
    if text is None:
        return EngineConfig()
    path = Path(text)
    if not path.exists():
        raise UsageError(f"--config {path} does not exist (fields and defaults: docs/config.md)")
    if path.is_dir():
        raise UsageError(f"--config {path} is a directory: give a TOML or JSON file (see docs/config.md)")
    kind = "TOML" if path.suffix == ".toml" else "JSON"
    try:
        raw_text = path.read_text()
        raw = tomllib.loads(raw_text) if kind == "TOML" else json.loads(raw_text)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--config {path}: cannot read it ({exc})") from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"--config {path} is not valid {kind}: {exc}") from None
    if not isinstance(raw, dict):
        raise UsageError(f"--config {path}: expected a table of sections (strategy, costs, ...), got "
                         f"{type(raw).__name__}")
    try:
        return EngineConfig.model_validate(raw)
    except ValidationError as exc:
        from .infra.config_tree import validation_line

        raise UsageError(f"--config {path} is invalid: {validation_line(exc)} (see docs/config.md)") from None


def engine_config(args: argparse.Namespace) -> EngineConfig:
    """``--config`` then every ``--set`` on top of it."""
    from .infra.config_tree import apply_sets

    return apply_sets(load_config(getattr(args, "config", None)), getattr(args, "set", None))


def grid(specs: list[str], base: EngineConfig) -> None:
    """Every ``--grid section.field=v1,v2`` names a real field and its values are finite numbers (whether a
    grid point is a valid config depends on the other fields of that point: the sweep checks each)."""
    from .infra.config_tree import set_field

    for spec in specs:
        key, sep, values = spec.partition("=")
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key.strip() or not vals:
            raise UsageError(f"--grid {spec!r}: expected section.field=v1,v2 (e.g. strategy.entry_bps=20,40)")
        try:
            set_field(base.model_dump(), f"{key.strip()}={vals[0]}")
        except UserError as exc:
            raise UsageError(str(exc).replace("--set", "--grid", 1)) from None
        bad = [v for v in vals if not _is_finite_number(v)]
        if bad:
            raise UsageError(f"--grid {spec!r}: values must be finite numbers, not {', '.join(bad)}")


def _is_finite_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False
