"""``engine/schema.py``: a regex's compiled size is bounded, so that compiling the 64 regexes a
schema may hold (the GIL held throughout) stays far below DESIGN §7's 1 s."""

from __future__ import annotations

from flowgate.engine.schema import SchemaProblem, check_schema
from flowgate.types import JSON


def test_check_schema_pattern_over_512_kib_compiled_returns_size_problem() -> None:
    schema: JSON = {"properties": {"name": {"pattern": r"^\p{L}{100}$"}}}

    assert check_schema(schema) == [
        SchemaProblem(
            ["properties", "name", "pattern"],
            "'^\\\\p{L}{100}$' compiles to more than 512 KiB; use + or * with "
            "minLength/maxLength instead of large repetition counts",
        )
    ]
