from __future__ import annotations

from pathlib import Path

from flowgate.settings import settings_markdown

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_doc_matches_settings_class() -> None:
    assert (ROOT / "docs" / "configuration.md").read_text() == settings_markdown(), (
        "run `make docs-config`"
    )
