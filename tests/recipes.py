"""Running a doc's shell recipes as a reader runs them: each ```sh block marked
``<!-- example: NAME -->`` goes through ``bash -euo pipefail`` with ``FLOWGATE_URL`` and
``FLOWGATE_API_KEY`` set, against a real server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import ADMIN_KEY

DOCS = Path(__file__).resolve().parents[1] / "docs"
_MARKED = r"^<!-- example: {name} -->\n```sh\n(.*?)^```$"


def example(doc: Path, name: str) -> str:
    found = re.findall(_MARKED.format(name=re.escape(name)), doc.read_text(), re.M | re.S)
    assert len(found) == 1, f"{doc} needs exactly one ```sh block marked `example: {name}`"
    script: str = found[0]
    return script


def example_names(doc: Path) -> list[str]:
    """The marked examples of ``doc``, in order; every ```sh block must be one of them."""
    text = doc.read_text()
    names = re.findall(r"^<!-- example: ([\w-]+) -->\n```sh$", text, re.M)
    blocks = re.findall(r"^```sh$", text, re.M)
    assert len(names) == len(blocks), f"{doc}: every ```sh block needs an `example:` marker"
    return names


def json_documents(text: str) -> list[Any]:
    """Every JSON object the script printed, in order (curl replies, one per line or not)."""
    decoder, documents, at = json.JSONDecoder(), [], 0
    while (start := text.find("{", at)) != -1:
        try:
            value, at = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            at = start + 1
            continue
        documents.append(value)
    return documents


async def run_example(
    doc: Path, name: str, url: str, *, key: str = ADMIN_KEY, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the example; fails the test on a non-zero exit. ``stdout`` holds what it printed."""
    bash = shutil.which("bash")
    assert bash, "bash is needed to run the docs' recipes"
    assert shutil.which("curl"), "curl is needed to run the docs' recipes (make test installs it)"
    variables = {**os.environ, "FLOWGATE_URL": url, "FLOWGATE_API_KEY": key, **(env or {})}
    # In a thread: the server answers on its own loop, but the test's loop must not block either.
    done = await asyncio.to_thread(
        subprocess.run,
        [bash, "-euo", "pipefail", "-c", example(doc, name)],
        env=variables,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stderr}\n{done.stdout}"
    return done
