"""The engine config as a tree of fields: ``--set section.field=value`` overrides and ``docs/config.md``.

Both walk the pydantic models (``EngineConfig`` and its sections), so a section or field added later is
settable and documented without touching this module.
"""

from __future__ import annotations

import difflib
import json
import types
import typing
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ValidationError

from ..core.config import EngineConfig
from ..errors import UserError


@dataclass(frozen=True)
class FieldDoc:
    path: str  # "costs.upbit.taker_fee"
    type: str
    default: Any
    unit: str
    description: str


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The model class a field holds (also through ``X | None``), or None for a leaf."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        return models[0] if len(models) == 1 else None
    return None


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("decimal.", "")


_UNITS = (("_bps_per_m_quote", "bps per 1M quote"), ("_bps", "bps"), ("_ms", "ms"), ("_ns", "ns"), ("_s", "s"),
          ("_krw", "KRW"), ("_usdt", "USDT"), ("_pct", "%"), ("_fee", "fraction of notional"),
          ("_losses", "round trips"), ("imbalance", "fraction of coin"))


def unit_of(name: str, annotation: Any) -> str:
    """A field's unit, from its name's suffix (the code's convention: ``_bps``, ``_s``, ``_krw``, ...)."""
    if annotation is bool:
        return "flag"
    for suffix, unit in _UNITS:
        if name.endswith(suffix):
            return unit
    return "-"


def fields(model: type[BaseModel] = EngineConfig, value: BaseModel | None = None, prefix: str = ""
           ) -> list[FieldDoc]:
    """Every leaf field under ``model`` with its effective default (a section's default instance wins over
    the field's own default, as for ``costs.upbit``)."""
    value = value if value is not None else model()
    out: list[FieldDoc] = []
    for name, info in type(value).model_fields.items():
        path = f"{prefix}{name}"
        current = getattr(value, name)
        sub = _submodel(info.annotation)
        if sub is not None and isinstance(current, BaseModel):
            out += fields(sub, current, path + ".")
            continue
        out.append(FieldDoc(path, _type_name(info.annotation), current, unit_of(name, info.annotation),
                            (info.description or "").strip()))
    return out


def sections(model: type[BaseModel] = EngineConfig, prefix: str = "") -> list[tuple[str, type[BaseModel]]]:
    """(path, model) of every section, depth first."""
    out: list[tuple[str, type[BaseModel]]] = []
    for name, info in model.model_fields.items():
        sub = _submodel(info.annotation)
        if sub is not None:
            out.append((f"{prefix}{name}", sub))
            out += sections(sub, f"{prefix}{name}.")
    return out


def _parse_value(text: str, annotation: Any) -> Any:
    """The text as pydantic should see it: JSON for lists/maps, None for 'none'/'null' where allowed; any
    other text is left to the field's own validation (lax mode reads '40', 'true', '0.001')."""
    t = text.strip()
    if t[:1] in "[{":
        try:
            return json.loads(t)
        except json.JSONDecodeError:
            return t
    if t.lower() in ("none", "null") and type(None) in typing.get_args(annotation):
        return None
    return t


def _close(path: str, choices: list[str]) -> str:
    near = difflib.get_close_matches(path, choices, n=3, cutoff=0.5)
    if not near:  # the last segment alone (a field put in the wrong section)
        leaf = path.rsplit(".", 1)[-1]
        near = [c for c in choices if c.rsplit(".", 1)[-1] == leaf][:3]
    return f"; did you mean {', '.join(near)}?" if near else f"; sections: {', '.join(s for s, _ in sections())}"


def validation_line(exc: ValidationError) -> str:
    """A pydantic validation error on one line: ``field.path: message; ...``."""
    parts = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e["loc"])
        parts.append(f"{loc}: {e['msg']}" if loc else str(e["msg"]))
    return "; ".join(parts)


def set_field(dump: dict[str, Any], spec: str) -> None:
    """Apply one ``section.field=value`` to a config dump (validated later, as a whole)."""
    path, sep, text = spec.partition("=")
    path = path.strip()
    if not sep or not path:
        raise UserError(f"--set {spec!r}: expected section.field=value (e.g. strategy.entry_bps=30)")
    leaves = [f.path for f in fields()]
    model: type[BaseModel] = EngineConfig
    node = dump
    parts = path.split(".")
    for i, part in enumerate(parts):
        info = model.model_fields.get(part)
        if info is None:
            raise UserError(f"--set {path}: no such config field{_close(path, leaves)}")
        sub = _submodel(info.annotation)
        last = i == len(parts) - 1
        if sub is not None and not last:
            model, node = sub, node[part]
        elif sub is not None:
            inside = [p for p in leaves if p.startswith(path + ".")]
            more = ", ..." if len(inside) > 4 else ""
            raise UserError(f"--set {path}: {path} is a section, name one of its fields: {', '.join(inside[:4])}{more}")
        elif not last:
            raise UserError(f"--set {path}: {'.'.join(parts[: i + 1])} is a field, not a section"
                            f"{_close(path, leaves)}")
        else:
            node[part] = _parse_value(text, info.annotation)


def apply_sets(cfg: EngineConfig, specs: list[str] | None) -> EngineConfig:
    """``cfg`` with every ``--set`` applied in order, validated by the models (types, ranges, cross checks)."""
    if not specs:
        return cfg
    dump = cfg.model_dump()
    for spec in specs:
        set_field(dump, spec)
    try:
        return EngineConfig.model_validate(dump)
    except ValidationError as exc:
        raise UserError(f"--set {' '.join(specs)}: {validation_line(exc)}") from None


def _fmt(value: Any) -> str:
    if isinstance(value, float | Decimal) and value % 1 == 0 and abs(float(value)) >= 1000:
        return f"{value:,.0f}"
    return "none" if value is None else str(value)


def config_doc() -> str:
    """docs/config.md, generated from the models (``arbitrage-lite config-doc > docs/config.md``)."""
    lines = ["# Engine configuration", "",
             "<!-- generated by `arbitrage-lite config-doc > docs/config.md` from core/config.py; "
             "tests/test_config_doc.py fails when it is out of date -->", "",
             "One config drives backtest, paper and drills. Give a TOML or JSON file with `--config FILE` "
             "(only the fields you change), and/or override any field with `--set section.field=value` "
             "(repeatable, applied after `--config`), e.g. `--set strategy.entry_bps=30 --set "
             "costs.binance.taker_fee=0.00075`. Values are checked by the field's type and range.", ""]
    by_section: dict[str, list[FieldDoc]] = {}
    for f in fields():
        by_section.setdefault(f.path.rsplit(".", 1)[0], []).append(f)
    docs = dict(sections())
    for section in [s for s in docs if s in by_section] + [s for s in by_section if s not in docs]:
        rows = by_section[section]
        lines += [f"## `{section}`", ""]
        doc = (docs[section].__doc__ or "").strip() if section in docs else ""
        if doc and not doc.startswith(docs[section].__name__ + "("):
            lines += [" ".join(doc.split()), ""]
        lines += ["| field | type | unit | default | description |", "|---|---|---|---|---|"]
        for f in rows:
            desc = " ".join(f.description.split()).replace("|", "\\|") or "-"
            lines.append(f"| `{f.path}` | {f.type.replace('|', 'or')} | {f.unit} | {_fmt(f.default)} | {desc} |")
        lines.append("")
    return "\n".join(lines)
