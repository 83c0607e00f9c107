"""Live streams (Server-Sent Events): a run's changes and an event trigger's.

Included before the dialect routers, so ``/v1/events/{key}/stream`` is matched here before the
Strait dialect's ``/v1/events/{key}`` (whose key may hold ``/``).
"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["streams"])
