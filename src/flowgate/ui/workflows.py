"""The workflows pages: the list (`/ui/workflows`) and a workflow's page."""

from __future__ import annotations
