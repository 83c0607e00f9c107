"""The overview (`/ui/overview`): runs per minute and failure rate, the slowest and most failing
workflows."""

from __future__ import annotations
