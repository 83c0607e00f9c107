"""``api``: runs start through ``POST /api/v1/workflows/{id}/run``; nothing to configure."""

from __future__ import annotations

from flowgate.service.trigger_types import TriggerType, register_trigger


@register_trigger("api")
class ApiTrigger(TriggerType):
    """Takes no fields beside ``name``; it marks the workflow as started through the API."""
