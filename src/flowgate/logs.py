"""Structured logs: stdlib ``logging`` everywhere, rendered by structlog as JSON or console.

Each record carries the current request id (a context variable set by the API middleware) and
whatever ids the caller put in ``extra``. Secrets and payloads are never logged.
"""

from __future__ import annotations

import contextvars
import logging
import sys

import structlog

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        request_id = request_id_var.get()
        if request_id is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        return True


def _drop_color_message(
    _logger: object, _name: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """uvicorn adds an ANSI-coloured copy of its message; the rendered log needs one."""
    event.pop("color_message", None)
    return event


def configure_logging(level: str = "info", fmt: str | None = None) -> None:
    """Install one root handler; ``fmt`` None means console on a terminal, else JSON."""
    use_console = fmt == "console" or (fmt is None and sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.ExtraAdder(),
            _drop_color_message,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every outbound request's full URL at INFO: a Slack webhook URL is a credential,
    # and env values end up in query strings.
    for noisy in ("uvicorn.access", "alembic.runtime.migration", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
