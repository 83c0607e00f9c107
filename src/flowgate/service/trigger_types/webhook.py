"""``webhook``: runs start through ``/hooks/{token}``, optionally signed (DESIGN §4)."""

from __future__ import annotations

import secrets

from flowgate.engine.steps import Problem
from flowgate.service import signatures
from flowgate.service.core import Services
from flowgate.service.trigger_types import TriggerSpec, TriggerType, TriggerView, register_trigger
from flowgate.store.base import TriggerRow


@register_trigger("webhook")
class WebhookTrigger(TriggerType):
    """A random URL token (192 bits); a signing secret, generated when a style is set and none
    is given, kept encrypted and shown once. A secret without a style is ``flowgate`` style."""

    fields = frozenset({"signatureStyle", "signingSecret"})

    def check(self, spec: TriggerSpec) -> list[Problem]:
        style = spec.config.get("signatureStyle")
        if style is not None and style not in signatures.STYLES:
            return [Problem(["signatureStyle"], f"must be one of {', '.join(signatures.STYLES)}")]
        if spec.signing_secret is not None:
            problem = signatures.secret_problem(str(style or "flowgate"), spec.signing_secret)
            if problem is not None:
                return [Problem(["signingSecret"], problem)]
        return []

    def build(
        self, svc: Services, spec: TriggerSpec, row: TriggerRow, *, previous: TriggerRow | None
    ) -> TriggerView:
        row["token"] = row["token"] or secrets.token_urlsafe(24)
        style = spec.config.get("signatureStyle")
        if style is None and (spec.signing_secret or row["signing_secret_encrypted"]):
            style = "flowgate"
        row["config"] = {**spec.config, "signatureStyle": style}
        secret = spec.signing_secret
        if secret is None and style is not None and row["signing_secret_encrypted"] is None:
            secret = signatures.new_secret(str(style))
        if style is None:
            row["signing_secret_encrypted"] = None
        elif secret is not None:
            row["signing_secret_encrypted"] = svc.vault.encrypt(secret)
        return TriggerView(row=row, url=self.url(svc, row), signing_secret=secret)

    def url(self, svc: Services, row: TriggerRow) -> str | None:
        return f"{svc.settings.base_url}/hooks/{row['token']}"
