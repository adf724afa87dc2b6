"""``arbitrage-lite config check``: every problem of a config and its environment at once, one line each.

A deploy should fail before the engine starts, with the whole list: a validator that stops at the first
mistake makes the operator fix-and-rerun once per mistake. So the file's parse error, every pydantic error
(all fields, every section's cross-field checks), every bad ``--set`` and, with ``--env``, every missing
secret, unreachable store and busy port are collected and printed together. Exit 0: no problem; 2: problems.
Messages name variables, files, hosts and ports, never a secret's value (a DSN's password is cut out).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from . import cli_checks as chk
from .core.config import EngineConfig

CONNECT_TIMEOUT_S = 2.0


def _pydantic_lines(exc: ValidationError, where: str) -> list[str]:
    out = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e["loc"])
        out.append(f"{where}: {loc + ': ' if loc else ''}{e['msg']}")
    return out


def _read_raw(path_text: str | None) -> tuple[dict[str, Any], list[str]]:
    """The config file's table (empty without ``--config``), or the one reason it cannot be read."""
    if path_text is None:
        return {}, []
    path = Path(path_text)
    if not path.is_file():
        return {}, [f"--config {path}: {'is a directory' if path.is_dir() else 'does not exist'}"]
    kind = "TOML" if path.suffix == ".toml" else "JSON"
    try:
        text = path.read_text()
        raw = tomllib.loads(text) if kind == "TOML" else json.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        return {}, [f"--config {path}: cannot read it ({exc})"]
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        return {}, [f"--config {path}: not valid {kind}: {exc}"]
    if not isinstance(raw, dict):
        return {}, [f"--config {path}: expected a table of sections, got {type(raw).__name__}"]
    return raw, []


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out


def config_problems(config: str | None, sets: list[str] | None) -> tuple[EngineConfig | None, list[str]]:
    """The config (None if invalid) and every problem of the file, the ``--set`` overrides and the models.

    The file is validated as the engine loads it (a partial table is an error there too); the ``--set``
    values on top of the file merged over the defaults, so a bad override shows even when the file has
    mistakes of its own. Both error lists are joined, each line once."""
    from .errors import UserError
    from .infra.config_tree import set_field

    raw, problems = _read_raw(config)
    where = f"--config {config}" if config else "config"
    lines: list[str] = []
    cfg: EngineConfig | None = None
    try:
        cfg = EngineConfig.model_validate(raw)
    except ValidationError as exc:
        lines += _pydantic_lines(exc, where)
    if sets:
        dump = _merge(cfg.model_dump() if cfg is not None else EngineConfig().model_dump(), raw)
        for spec in sets:
            try:
                set_field(dump, spec)
            except UserError as exc:
                problems.append(chk.one_line(exc))
            except (KeyError, TypeError):  # the file replaced the section by a scalar (reported above)
                problems.append(f"--set {spec}: cannot apply it (its section in {where} is not a table)")
        try:
            with_sets = EngineConfig.model_validate(dump)
            cfg = with_sets if cfg is not None else None
        except ValidationError as exc:
            cfg = None
            lines += [line for line in _pydantic_lines(exc, where + " with --set") if
                      line.replace(" with --set", "", 1) not in lines]
    return cfg, problems + lines


# ---- the environment (--env)
def secret_problems(cfg: EngineConfig | None, real: bool, secrets_file: str | None,
                    env: Mapping[str, str]) -> list[str]:
    """Venue keys for ``--real`` and the variables of every configured alert channel, by name only."""
    from .infra.venues import secrets

    out = []
    if real:
        for venue in sorted(secrets.NAMES):
            try:
                secrets.load(venue, path=secrets_file, env=env)
            except secrets.SecretsError as exc:
                out.append(f"secrets: {chk.one_line(exc)}")
    if cfg is not None:
        a = cfg.alerts
        wanted = [("alerts.telegram", a.telegram.token_env, bool(a.telegram.chat_id)),
                  ("alerts.slack", a.slack.url_env, a.slack.enabled),
                  ("alerts.email", a.email.password_env, bool(a.email.host and a.email.username))]
        out += [f"secrets: {name} is configured but ${var} is not set" for name, var, on in wanted
                if on and not env.get(var)]
    return out


def _endpoint(url: str, default_port: int) -> tuple[str, int, str]:
    """(host, port, shown) of a redis:// or postgresql:// URL or a key=value DSN; ``shown`` has no password."""
    parts = urlsplit(url)
    if parts.scheme:
        host, port = parts.hostname or "localhost", parts.port or default_port
        return host, port, f"{parts.scheme}://{host}:{port}{parts.path}"
    fields = dict(kv.split("=", 1) for kv in url.split() if "=" in kv)
    host, port = fields.get("host", "localhost"), int(fields.get("port", default_port))
    return host, port, f"{host}:{port}/{fields.get('dbname', '')}"


def reach_problems(targets: list[tuple[str, str, int]]) -> list[str]:
    """Each (what, url, default port) answers a TCP connect (a store that is down fails here, not mid-run)."""
    out = []
    for what, url, default_port in targets:
        try:
            host, port, shown = _endpoint(url, default_port)
        except ValueError:
            out.append(f"{what}: cannot read the address (expected a URL like scheme://HOST:PORT/...)")
            continue
        try:
            with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
                pass
        except OSError as exc:
            out.append(f"{what}: {shown} is not reachable ({exc.strerror or exc})")
    return out


def port_problems(ports: list[tuple[str, int]]) -> list[str]:
    """Each (flag, port) can be bound on 127.0.0.1 now (0: any free port, always fine)."""
    out = []
    for flag, port in ports:
        if not port:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError as exc:
                out.append(f"{flag} {port}: cannot be bound on 127.0.0.1 ({exc.strerror or exc})")
    return out


def path_problems(cfg: EngineConfig | None, out_dir: str | None) -> list[str]:
    out = []
    if cfg is not None:
        status = cfg.guard.upbit_status_file
        if status and not Path(status).is_file():
            out.append(f"guard.upbit_status_file {status}: no such file")
        if cfg.alerts.queue.backend == "file":
            out += _writable(Path(cfg.alerts.queue.path).expanduser().parent, "alerts.queue.path")
    if out_dir:
        out += _writable(Path(out_dir), "--out")
    return out


def _writable(path: Path, what: str) -> list[str]:
    try:
        chk.output_dir(str(path), what)
    except chk.UsageError as exc:
        return [str(exc)]
    return []


def env_problems(args: argparse.Namespace, cfg: EngineConfig | None, env: Mapping[str, str]) -> list[str]:
    targets = [("--redis", u, 6379) for u in [args.redis] if u]
    dsn = args.journal_dsn or env.get("ARBITRAGE_LITE_JOURNAL_DSN")
    targets += [("--journal-dsn", dsn, 5432)] if dsn else []
    if cfg is not None and cfg.alerts.queue.backend == "redis":
        targets.append(("alerts.queue.redis_url", cfg.alerts.queue.redis_url, 6379))
    ports = [(f, p) for f, p in (("--metrics-port", args.metrics_port), ("--control-port", args.control_port)) if p]
    return (secret_problems(cfg, args.real, args.secrets_file, env) + reach_problems(targets)
            + port_problems(ports) + path_problems(cfg, args.out))


def cmd_config_check(args: argparse.Namespace) -> int:
    cfg, problems = config_problems(args.config, args.set)
    if args.env:
        problems += env_problems(args, cfg, os.environ)
    for line in problems:
        print(f"problem: {chk.one_line(line)}")
    scope = "config and environment" if args.env else "config (add --env to check secrets, stores and ports)"
    print(f"{len(problems)} problem(s) in the {scope}" if problems else f"ok: the {scope}")
    return 2 if problems else 0


def add_ops(sub: Any) -> None:
    cf = sub.add_parser("config", help="engine config tools (check)")
    words = cf.add_subparsers(dest="config_command", required=True, parser_class=chk.Parser)
    ck = words.add_parser("check", help="report every problem of a config (and with --env its environment) at once")
    ck.add_argument("--config", help="TOML or JSON engine config (only the fields it changes)")
    ck.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE", help="override one field (repeatable)")
    ck.add_argument("--env", action="store_true",
                    help="also check the environment: secrets present, Redis / PostgreSQL reachable, ports free")
    ck.add_argument("--real", action="store_true", help="with --env: the venue keys a --real live run needs")
    ck.add_argument("--secrets-file", help="with --real: the secrets file (default: $ARBITRAGE_SECRETS_FILE or "
                    "the environment)")
    ck.add_argument("--redis", help="with --env: the Redis URL the run will use")
    ck.add_argument("--journal-dsn", help="with --env: the journal's PostgreSQL DSN "
                    "(default $ARBITRAGE_LITE_JOURNAL_DSN)")
    ck.add_argument("--metrics-port", type=chk.port, help="with --env: must be free on 127.0.0.1")
    ck.add_argument("--control-port", type=chk.port, help="with --env: must be free on 127.0.0.1")
    ck.add_argument("--out", help="with --env: the run's output directory (must be writable)")
    ck.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    ck.set_defaults(func=cmd_config_check)
