"""The events page (`/ui/events`): waiting triggers, send and cancel."""

from __future__ import annotations
