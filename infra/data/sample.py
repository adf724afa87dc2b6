"""The real sample, built on this machine from the shared data set: only its MIT-licensed file ships.

The sample's sources have no licence except the hftbacktest L2 file (MIT); the data set's MANIFEST says the
rest are test fixtures that must not be redistributed. So the repository and the wheel ship only
``sample_data/binance_btcusdt_l2_sample.gz`` (and the README), and the other files are cut out of a local copy
of the shared data set by ``make_sample`` (deterministic: byte-identical on every machine) wherever they are
needed: the tests' cache, ``arbitrage-lite demo``'s output directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from ...errors import UserError

ENV = "ARBITRAGE_LITE_DATA"  # a shared data directory, used when --data is not given
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the repository root in a source checkout
SHIPPED_DIR = PACKAGE_ROOT / "sample_data"
SHIPPED = ("binance_btcusdt_l2_sample.gz",)  # licensed (MIT): in the repository and the wheel
LAST_RESORT = Path("/work/shared/data")
STAMP = ".sample.json"  # in a built sample: what it was built from and the hash of every file
FORMAT = 1  # bump when the stamp's meaning changes


class SampleError(UserError):
    """The sample cannot be built from this data set (a file missing, a different data set)."""


def search_places(explicit: Path | None = None, cwd: Path | None = None) -> list[tuple[Path, str]]:
    """Where the shared data set is looked for, in order, each with how it got there.

    An explicit directory (``--data``) or ``$ARBITRAGE_LITE_DATA`` is the only place looked at: naming a
    directory that is not the data set is a mistake to report, not a reason to read another one.
    """
    if explicit is not None:
        return [(explicit, "--data")]
    env = os.environ.get(ENV)
    if env:
        return [(Path(env), f"${ENV}")]
    here = Path.cwd() if cwd is None else cwd
    return [(PACKAGE_ROOT.parent / "shared" / "data", "beside the repository"),
            (here.parent / "shared" / "data", "beside the working directory"), (LAST_RESORT, "default")]


def is_data_set(path: Path) -> bool:
    return (path / "MANIFEST.md").is_file()


def find_shared_data(explicit: Path | None = None) -> Path | None:
    """The first place of ``search_places`` holding a ``MANIFEST.md``, or None."""
    for path, _ in search_places(explicit):
        if is_data_set(path):
            return path.resolve()
    return None


def not_found_message(explicit: Path | None = None) -> str:
    """One line: where the data set was looked for and what to pass."""
    places = ", ".join(f"{p} ({how})" for p, how in search_places(explicit))
    return (f"no shared data set (a directory holding MANIFEST.md) at {places}: the sample is built from it; "
            f"pass --data DIR or set {ENV}=DIR")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _inputs() -> tuple[str, ...]:
    from . import make_sample as ms

    return (ms.JOINED, ms.FX_DAILY, ms.KIMPAI, ms.KIMPAI_FX, ms.L2, ms.OB_UPBIT, ms.OB_BINANCE)


def build_key(shared: Path) -> str:
    """What a sample is made of: the generator's code, its input files and the shipped files."""
    h = hashlib.sha256(f"format {FORMAT}\n".encode())
    h.update(Path(__file__).with_name("make_sample.py").read_bytes())
    for rel in _inputs():
        src = shared / rel
        if not src.is_file():
            raise SampleError(f"the shared data set at {shared} has no {rel}: the sample is built from it")
        h.update(f"{rel} {_sha256(src)}\n".encode())
    for name in SHIPPED:
        shipped = SHIPPED_DIR / name
        h.update(f"{name} {_sha256(shipped) if shipped.is_file() else '-'}\n".encode())
    return h.hexdigest()


def _stamp(dest: Path) -> dict[str, object] | None:
    try:
        stamp = json.loads((dest / STAMP).read_text())
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def is_current(dest: Path, key: str) -> bool:
    """``dest`` holds a complete sample built from ``key``, every file as it was written."""
    stamp = _stamp(dest)
    if stamp is None or stamp.get("key") != key or not isinstance(files := stamp.get("files"), dict) or not files:
        return False
    present = {p.name for p in dest.iterdir()} - {STAMP}
    return present == set(files) and all(_sha256(dest / n) == files[n] for n in files)


def _check_shipped(built: Path) -> None:
    """The shipped files are the ones this data set makes: otherwise it is not the data set they came from."""
    for name in SHIPPED:
        shipped = SHIPPED_DIR / name
        if shipped.is_file() and shipped.read_bytes() != (built / name).read_bytes():
            raise SampleError(f"{name} made from this shared data set differs from the shipped {shipped}: not the "
                              "data set the sample was made from (see sample_data/README.md)")


def _install(tmp: Path, dest: Path, key: str) -> None:
    """Move the finished ``tmp`` to ``dest`` (a rename: a reader never sees half a sample)."""
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    if dest.exists():
        dest.rename(old)
    try:
        tmp.rename(dest)
    except OSError:  # another process installed one meanwhile
        if not is_current(dest, key):
            raise
        shutil.rmtree(tmp)
    shutil.rmtree(old, ignore_errors=True)


def ensure_sample(dest: Path, shared: Path) -> Path:
    """``dest`` holding the sample made from ``shared``; an existing complete one built from the same inputs is
    reused, anything else in ``dest`` is replaced (only if ``dest`` holds nothing but sample files)."""
    key = build_key(shared)
    if is_current(dest, key):
        return dest
    if dest.is_file():
        raise SampleError(f"{dest} is an existing file, not a sample directory")
    if dest.is_dir() and _stamp(dest) is None and any(dest.iterdir()):
        raise SampleError(f"{dest} holds files but no {STAMP}: not a sample directory, left alone")
    from .make_sample import make_samples

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.build-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        made = make_samples(shared, tmp)
        _check_shipped(tmp)
        files = {p.name: _sha256(p) for p in made}
        (tmp / STAMP).write_text(json.dumps({"format": FORMAT, "key": key, "shared": str(shared), "files": files},
                                            indent=1, sort_keys=True) + "\n")
        _install(tmp, dest, key)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
