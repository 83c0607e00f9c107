"""The pinkfish dialect (DESIGN §4)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["pinkfish"])
