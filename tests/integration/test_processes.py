"""The ``flowgate`` command as a process: configuration errors and the SQLite worker refusal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FLOWGATE = str(Path(sys.executable).parent / "flowgate")


def _flowgate(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLOWGATE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        check=False,
    )


def test_serve_bad_setting_stops_with_one_line_naming_variable() -> None:
    result = _flowgate("serve", FLOWGATE_PORT="eighty")

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("flowgate: invalid configuration: FLOWGATE_PORT:")


def test_worker_on_sqlite_refuses_with_clear_message() -> None:
    result = _flowgate("worker", FLOWGATE_DATABASE_URL="sqlite:///./never.db")

    assert result.returncode == 2
    assert "flowgate worker needs PostgreSQL" in result.stderr


def test_db_upgrade_creates_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/fresh.db"

    first = _flowgate("db", "upgrade", FLOWGATE_DATABASE_URL=url)
    again = _flowgate("db", "upgrade", FLOWGATE_DATABASE_URL=url)

    assert first.returncode == 0, first.stderr
    assert again.returncode == 0, again.stderr
    assert "database is up to date" in again.stdout
