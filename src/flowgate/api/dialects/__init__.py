"""API dialects: the trigger APIs of the systems flowgate replaces (DESIGN §4).

Each dialect is one module here with a ``router`` and, when its errors have their own body shape,
a call to ``register_error_shape`` for its path prefix. A dialect only translates: its request
into a ``service.dialects.DialectCall``, the result back into its own answer. Adding a dialect is
adding its module and its name to ``DIALECTS``.
"""

from __future__ import annotations

import importlib

from fastapi import APIRouter

DIALECTS = ("pinkfish", "axiom", "shipyard", "strait")


def routers() -> list[APIRouter]:
    """Each dialect's router; importing a dialect registers its error shape."""
    return [importlib.import_module(f"{__name__}.{name}").router for name in DIALECTS]
