"""The search space of a tuning study: a TOML or JSON file naming config fields and their ranges.

    [strategy.entry_bps]          # a range: low..high, on a step (grid search needs the step)
    low = 20
    high = 80
    step = 5
    [strategy.exit_bps]
    values = [0, 5, 10]           # a choice

A point (one value per field) becomes an engine config through ``sweep.grid_points`` (dotted fields set
exactly, Decimal fields from their text), so a point that breaks a config rule (exit above entry) is refused
the same way in a sweep and in a study.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.config import EngineConfig
from ..errors import UserError
from .sweep import grid_points

MAX_GRID = 100_000


@dataclass(frozen=True)
class Dim:
    """One searched field: a choice of ``values``, or a range ``low..high`` (quantized to ``step`` if set)."""

    key: str
    values: tuple[float, ...] = ()
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    log: bool = False

    def grid(self) -> list[float]:
        if self.values:
            return list(self.values)
        if self.step is None:
            raise UserError(f"grid search needs a step for {self.key} (or a list of values)")
        n = math.floor((self.high - self.low) / self.step + 1e-9)
        return [round(self.low + i * self.step, 10) for i in range(n + 1)]

    def sample(self, rng: random.Random) -> float:
        if self.values:
            return rng.choice(self.values)
        if self.log:
            v = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            v = rng.uniform(self.low, self.high)
        if self.step is not None:
            v = self.low + round((v - self.low) / self.step) * self.step
        return round(min(max(v, self.low), self.high), 10)

    def safe(self) -> str:
        """The key as a Ray Tune / Optuna parameter name (Tune reads dots and slashes as nesting)."""
        return self.key.replace(".", "__")


def _leaves(node: dict[str, Any], prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for k, v in node.items():
        key = f"{prefix}.{k}" if prefix else k
        if not isinstance(v, dict):
            raise UserError(f"space: {key} must be a table with low/high[/step] or values")
        out.extend([(key, v)] if {"low", "high", "values"} & set(v) else _leaves(v, key))
    return out


def _dim(key: str, spec: dict[str, Any]) -> Dim:
    extra = set(spec) - {"low", "high", "step", "log", "values"}
    if extra:
        raise UserError(f"space: {key}: unknown keys {sorted(extra)} (low, high, step, log or values)")
    try:
        if "values" in spec:
            vals = tuple(float(v) for v in spec["values"])
            if not vals or not all(math.isfinite(v) for v in vals):
                raise UserError(f"space: {key}: values must be a non-empty list of finite numbers")
            return Dim(key, values=vals)
        low, high = float(spec["low"]), float(spec["high"])
        step = None if spec.get("step") is None else float(spec["step"])
    except (KeyError, TypeError, ValueError):
        raise UserError(f"space: {key}: a range needs numeric low and high (and optionally step, log)") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise UserError(f"space: {key}: low must be below high")
    if step is not None and not (math.isfinite(step) and step > 0):
        raise UserError(f"space: {key}: step must be positive")
    log = bool(spec.get("log", False))
    if log and (low <= 0 or step is not None):
        raise UserError(f"space: {key}: log ranges need low > 0 and no step")
    return Dim(key, low=low, high=high, step=step, log=log)


def load_space(path: Path, base: EngineConfig) -> list[Dim]:
    """The space of a TOML/JSON file, each field checked against the engine config."""
    if not path.is_file():
        raise UserError(f"--space {path} is not a file (a TOML or JSON search space; see docs/research.md)")
    try:
        text = path.read_text()
        raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (OSError, ValueError) as exc:
        raise UserError(f"--space {path} cannot be read: {exc}") from None
    dims = [_dim(k, v) for k, v in _leaves(raw)]
    if not dims:
        raise UserError(f"--space {path} names no field")
    return check_dims(dims, base)


def check_dims(dims: list[Dim], base: EngineConfig) -> list[Dim]:
    """Every field exists in the engine config (one value each: a valid point is not required here)."""
    from ..infra.config_tree import set_field

    for d in dims:
        try:
            set_field(base.model_dump(), f"{d.key}={d.values[0] if d.values else d.low}")
        except UserError as exc:
            raise UserError(str(exc).replace("--set ", "--space: ", 1)) from None
    return dims


def point_config(base: EngineConfig, values: dict[str, float]) -> EngineConfig:
    """The engine config of one point (a UserError if the point breaks a config rule)."""
    return grid_points(base, {k: [v] for k, v in values.items()})[0].config


def fixed_points(dims: list[Dim], search: str, n: int, seed: int) -> list[dict[str, float]]:
    """The points of a grid (every combination, in order) or of a random search (``n`` seeded draws)."""
    if search == "grid":
        grids = [d.grid() for d in dims]
        if math.prod(len(g) for g in grids) > MAX_GRID:
            raise UserError(f"the grid has more than {MAX_GRID} points: coarser steps, or --search optuna")
        return [dict(zip([d.key for d in dims], combo, strict=True)) for combo in itertools.product(*grids)]
    rng = random.Random(seed)
    return [{d.key: d.sample(rng) for d in dims} for _ in range(n)]


def tune_domains(dims: list[Dim]) -> dict[str, Any]:
    """The space as Ray Tune domains (what OptunaSearch turns into Optuna distributions)."""
    from ray import tune

    out: dict[str, Any] = {}
    for d in dims:
        if d.values:
            out[d.safe()] = tune.choice(list(d.values))
        elif d.log:
            out[d.safe()] = tune.loguniform(d.low, d.high)
        elif d.step is not None:
            out[d.safe()] = tune.quniform(d.low, d.high, d.step)
        else:
            out[d.safe()] = tune.uniform(d.low, d.high)
    return out


def describe(dims: list[Dim]) -> list[dict[str, Any]]:
    return [{"key": d.key, "values": list(d.values)} if d.values else
            {"key": d.key, "low": d.low, "high": d.high, "step": d.step, "log": d.log} for d in dims]


def from_description(rows: list[dict[str, Any]]) -> list[Dim]:
    return [Dim(r["key"], values=tuple(r["values"])) if "values" in r else
            Dim(r["key"], low=r["low"], high=r["high"], step=r["step"], log=r["log"]) for r in rows]
