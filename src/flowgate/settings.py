"""Configuration: ``FLOWGATE_*`` environment variables, read once at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting of the server. ``docs/configuration.md`` is generated from this class."""

    model_config = SettingsConfigDict(env_prefix="FLOWGATE_", extra="ignore")

    database_url: str = Field(
        "sqlite:///./flowgate.db",
        description="`sqlite:///path.db` or `postgresql://user:pass@host:port/db`.",
    )
    host: str = Field("127.0.0.1", description="Address the server listens on.")
    port: int = Field(8080, ge=0, le=65535, description="Port the server listens on.")
    public_url: str | None = Field(
        None, description="Base of every absolute URL flowgate hands out; default http://host:port."
    )
    admin_key: str | None = Field(
        None, description="If set, a key with exactly this value and the admin scope exists."
    )
    workers: int = Field(
        16,
        ge=0,
        le=256,
        description="In-process worker concurrency (runs executed at once); 0 = API only.",
    )
    max_wait_secs: float = Field(
        60, gt=0, description="Longest `x-api-wait` a request may ask for."
    )
    pinkfish_wait_secs: float = Field(
        60,
        gt=0,
        description="How long a Pinkfish-style call with `x-api-wait: true` waits for its run "
        "before answering with the timeout body.",
    )
    sqlite_synchronous: Literal["normal", "full"] = Field(
        "normal",
        description="SQLite's `synchronous` pragma (WAL mode). `normal`: a commit survives the "
        "process being killed (`kill -9`), but the last commits before a power loss or an OS "
        "crash may be lost; `full`: every commit is on disk before it is answered, at the price "
        "of an fsync per commit. PostgreSQL ignores it.",
    )
    max_body_bytes: int = Field(1_048_576, gt=0, description="Largest accepted request body.")
    max_upload_bytes: int = Field(26_214_400, gt=0, description="Largest accepted uploaded file.")
    max_output_bytes: int = Field(
        1_048_576,
        gt=0,
        description="Largest step output, run output or event payload (serialized JSON); "
        "a step over it fails with OUTPUT_TOO_LARGE.",
    )
    secret_key: str | None = Field(
        None,
        description="Encrypts connection credentials at rest; unset: a key generated once in "
        "`{data_dir}/secret.key`. Empty is a start-up error.",
    )
    lease_secs: float = Field(30, gt=0, description="How long a worker's claim on a run lasts.")
    poll_interval_secs: float = Field(
        2.0, gt=0, description="Safety re-scan for work when no notification arrives."
    )
    schedule_grace_secs: float = Field(
        60,
        ge=0,
        description="A schedule with `catchUp: none` still runs a due time this many seconds "
        "late (a busy or restarting scheduler); older due times count as missed.",
    )
    idempotency_ttl_secs: int = Field(86_400, gt=0, description="How long idempotency keys last.")
    cache_secs: float = Field(
        2.0,
        ge=0,
        description="How long API keys and workflows are cached per process (0 = off); "
        "changes made through another process show within this time.",
    )
    http_allow_private: bool = Field(
        False, description="Let http steps call private, loopback and link-local addresses."
    )
    http_allow_hosts: str = Field(
        "",
        description="Comma-separated `host:port` pairs that outbound calls may reach although "
        "they are private or loopback: exactly that host and port, nothing else "
        "(`flowgate serve --examples` adds its Stripe stand-in's).",
    )
    http_timeout_secs: float = Field(
        30,
        gt=0,
        description="Bounds a whole outbound call (connect, every read and the body, redirects "
        "included) of an http step or action.",
    )
    http_max_response_bytes: int = Field(
        5_242_880, gt=0, description="Largest response body an http step or action reads."
    )
    smtp_host: str | None = Field(None, description="Mail server for email without a connection.")
    smtp_port: int = Field(25, ge=1, le=65535, description="Its port.")
    smtp_from: str | None = Field(None, description="Default sender address.")
    smtp_username: str | None = Field(None, description="SMTP user name, if it needs one.")
    smtp_password: str | None = Field(None, description="SMTP password, if it needs one.")
    smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS.")
    strict_templates: bool = Field(False, description="Undefined template variables are errors.")
    python_modules: str = Field(
        "", description="Comma-separated modules whose registered functions `python` steps call."
    )
    functions_dir: Path | None = Field(
        Path("functions"),
        description="Every `*.py` file in this folder registers its functions for `python` "
        "steps (docs/python-steps.md). The default is used only if the folder exists; one set "
        "explicitly must exist; empty turns it off.",
    )
    execute_rate_limit: int = Field(500, gt=0, description="Default execute requests per minute.")
    read_rate_limit: int = Field(6000, gt=0, description="Default read requests per minute.")
    rate_limit_lease_secs: float = Field(
        0.25,
        ge=0,
        description="PostgreSQL: each API process claims from the shared rate counters about "
        "this many seconds of a key's recent pace at a time (0: one database round trip per "
        "request). A process may refuse while another holds up to that much unspent.",
    )
    inbox_days: float = Field(
        7, gt=0, description="How long deliveries to webhook URLs are kept in the inbox."
    )
    inbox_prune_secs: float = Field(
        60, gt=0, description="How often deliveries older than `inbox_days` are deleted."
    )
    data_dir: Path = Field(
        Path(".flowgate"),
        description="Local state: the generated `secret.key` (0600; the directory 0700 if "
        "flowgate creates it).",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Least severe level logged."
    )
    log_format: Literal["json", "console"] | None = Field(
        None, description="`json`, or `console` (the default on a terminal)."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("functions_dir", mode="before")
    @classmethod
    def _no_functions_dir(cls, value: object) -> object:
        # Empty means "none", not Path("") — which is the current directory.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("secret_key")
    @classmethod
    def _usable_secret(cls, value: str | None) -> str | None:
        # Set but blank is a mistake (a templated env file, say), never "use the key file".
        if value is not None and not value.strip():
            raise ValueError("is empty; set a long random value, or unset it to use a key file")
        return value

    @field_validator("http_allow_hosts")
    @classmethod
    def _host_port_pairs(cls, value: str) -> str:
        for pair in filter(None, (part.strip() for part in value.split(","))):
            host, _, port = pair.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{pair!r} is not host:port (comma-separate several)")
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql", "postgres")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        if value.startswith("sqlite") and ":memory:" in value:
            raise ValueError("an in-memory SQLite database is not durable; give a file path")
        return value

    @property
    def http_allowed_destinations(self) -> frozenset[tuple[str, int]]:
        """``FLOWGATE_HTTP_ALLOW_HOSTS`` as ``(host, port)`` pairs, hosts lower-cased and IPv6
        literals without their brackets (as the outbound client names them)."""
        pairs = filter(None, (part.strip() for part in self.http_allow_hosts.split(",")))
        found = set()
        for pair in pairs:
            host, _, port = pair.rpartition(":")
            found.add((host.strip("[]").lower(), int(port)))
        return frozenset(found)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


class SettingsError(Exception):
    """A one-line explanation of a bad ``FLOWGATE_*`` value."""


def load_settings(**overrides: object) -> Settings:
    """Read the environment; raise :class:`SettingsError` naming the first bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "FLOWGATE_" + "_".join(str(part) for part in first["loc"]).upper()
        raise SettingsError(f"{name}: {first['msg']}") from exc


def settings_markdown() -> str:
    """The table in ``docs/configuration.md``: one row per ``FLOWGATE_*`` variable."""
    lines = [
        "# Configuration",
        "",
        "Every setting is an environment variable with the prefix `FLOWGATE_`. A bad value stops",
        "start-up with a one-line message naming the variable. This file is generated from",
        "`flowgate.settings.Settings` by `make docs-config`; a test keeps it current.",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "(unset)" if default in (None, "") else f"`{default}`"
        lines.append(f"| `FLOWGATE_{name.upper()}` | {shown} | {field.description or ''} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(settings_markdown())
