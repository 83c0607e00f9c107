"""``flowgate serve`` starts fast: what start-up does not need stays unimported (issue 12, C1)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from flowgate.store.migrate import HEAD_REVISION, MIGRATIONS_DIR, is_at_head

_SERVE_IMPORTS = (
    "import flowgate.cli, flowgate.server, flowgate.api.app, flowgate.service.examples;"
    "import sys; print(' '.join(sorted(sys.modules)))"
)


def test_head_revision_is_alembics_head() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD_REVISION]


def test_migrated_database_is_at_head_and_empty_one_is_not(
    sqlite_template: Path, tmp_path: Path
) -> None:
    migrated = create_engine(f"sqlite:///{sqlite_template}")
    empty = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    with migrated.connect() as conn:
        assert is_at_head(conn)
    with empty.connect() as conn:
        assert not is_at_head(conn)
    migrated.dispose()
    empty.dispose()


def test_serve_imports_leave_out_what_start_up_does_not_need() -> None:
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", _SERVE_IMPORTS], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    assert {"alembic", "asyncpg", "aiosmtpd", "jinja2"} & loaded == set()
