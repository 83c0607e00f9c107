"""``FLOWGATE_SQLITE_SYNCHRONOUS``: what every SQLite connection of the store is set to.

``normal`` (the default) survives ``kill -9`` but not a power loss; ``full`` fsyncs each commit
(docs/performance.md, docs/deployment.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from flowgate.settings import Settings
from flowgate.store import open_store
from flowgate.store.sqlite import SqliteStore

_PRAGMA_VALUES = {"normal": 1, "full": 2}


@pytest.mark.parametrize("setting", ["normal", "full"])
async def test_every_connection_uses_the_configured_synchronous_mode(
    tmp_path: Path, setting: str
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}", sqlite_synchronous=setting)
    assert isinstance(store, SqliteStore)
    try:
        read = await store.read(lambda conn: conn.execute(sa.text("PRAGMA synchronous")).scalar())
        written = await store.write(
            lambda conn: conn.execute(sa.text("PRAGMA synchronous")).scalar()
        )
    finally:
        await store.close()

    assert read == written == _PRAGMA_VALUES[setting]


def test_the_setting_defaults_to_normal_and_refuses_other_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FLOWGATE_SQLITE_SYNCHRONOUS", raising=False)
    assert Settings().sqlite_synchronous == "normal"

    monkeypatch.setenv("FLOWGATE_SQLITE_SYNCHRONOUS", "full")
    assert Settings().sqlite_synchronous == "full"

    monkeypatch.setenv("FLOWGATE_SQLITE_SYNCHRONOUS", "off")
    with pytest.raises(ValueError, match="sqlite_synchronous"):
        Settings()
