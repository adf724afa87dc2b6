"""docs/config.md is generated from the config models and must match them: a field added, renamed or
re-defaulted without regenerating it fails here. Every field must say what it means."""

from __future__ import annotations

from pathlib import Path

from arbitrage_lite.cli import main
from arbitrage_lite.core.config import EngineConfig
from arbitrage_lite.infra.config_tree import apply_sets, config_doc, fields

DOC = Path(__file__).resolve().parent.parent / "docs" / "config.md"


def test_docs_config_md_is_up_to_date() -> None:
    assert DOC.read_text() == config_doc(), "regenerate: arbitrage-lite config-doc > docs/config.md"


def test_every_field_is_documented_with_unit_and_default() -> None:
    text = config_doc()
    rows = fields()
    assert len(rows) >= 30
    for f in rows:
        assert f.description, f"{f.path}: give it a description= (docs/config.md is made from it)"
        assert f"| `{f.path}` |" in text


def test_config_doc_command_prints_it(capsys: object) -> None:
    assert main(["config-doc"]) == 0
    assert capsys.readouterr().out == config_doc()  # type: ignore[attr-defined]


def test_set_reaches_every_field_of_every_section() -> None:
    """--set walks the models: each leaf field is settable to its own default (a section added later too)."""
    cfg = EngineConfig()
    for f in fields():
        value = "none" if f.default is None else f.default
        if isinstance(value, tuple | list):
            value = "[" + ",".join(f'"{v}"' for v in value) + "]"
        assert apply_sets(cfg, [f"{f.path}={value}"]) == cfg, f.path
    changed = apply_sets(cfg, ["strategy.entry_bps=55", "costs.binance.taker_fee=0.00075", "risk.loss_cooldown_s=0"])
    assert changed.strategy.entry_bps == 55.0 and str(changed.costs.binance.taker_fee) == "0.00075"
    assert changed.risk.loss_cooldown_s == 0.0 and changed.inventory == cfg.inventory
