"""structlog set-up: JSON lines in production, a readable console in dev, secrets redacted.

Every log event passes through :func:`redact_secrets`, so a password, token, secret or
authorization header never reaches a log sink, whoever logged it.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adx.settings import LogFormat, Settings

REDACTED = "[REDACTED]"
CORRELATION_HEADER = "x-correlation-id"

# Keys whose values are secret wherever they appear (case-insensitive, substring match).
_SECRET_KEY = re.compile(
    r"pass(word|wd)?|secret|token|authorization|api[_-]?key|cookie|credential|private[_-]?key"
    r"|recovery[_-]?codes?|(^|_)t?otp(_|$)",
    re.IGNORECASE,
)
# Secrets embedded in free text: bearer tokens, JWTs, and DSN passwords.
_TEXT_PATTERNS = (
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1" + REDACTED),
    (re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@\s]+@"), r"\1" + REDACTED + "@"),
)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        for pattern, replacement in _TEXT_PATTERNS:
            value = pattern.sub(replacement, value)
        return value
    if isinstance(value, Mapping):
        return {k: REDACTED if _is_secret_key(k) else _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(v) for v in value)
    return value


def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and bool(_SECRET_KEY.search(key))


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: blanks secret-named fields and scrubs secrets out of text."""
    for key in list(event_dict):
        if _is_secret_key(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redact_value(event_dict[key])
    return event_dict


def configure_logging(settings: Settings) -> None:
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        redact_secrets,
    ]
    renderer: structlog.types.Processor
    if settings.effective_log_format is LogFormat.JSON:
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())

    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    # Library logs (uvicorn, temporalio, httpx) go through the same processors and redaction.
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(ProbeLines())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())


# Health and readiness probes and metric scrapes: every few seconds, from every prober.
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class ProbeLines(logging.Filter):
    """Keeps the access lines of probes (uvicorn's, and httpx's for the gateway's own upstream
    checks) out of the logs unless the level is DEBUG: a log line every 2 s per prober buries
    what happened."""

    def filter(self, record: logging.LogRecord) -> bool:
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        if record.name == "uvicorn.access" and len(args) >= 3:
            path = str(args[2]).split("?", 1)[0]
        elif record.name == "httpx" and len(args) >= 2:
            path = getattr(args[1], "path", "")
        else:
            return True
        return path not in PROBE_PATHS


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


class CorrelationIdMiddleware:
    """Binds ``correlation_id`` (from ``X-Correlation-ID``, generated when absent) to every
    log event of the request and echoes it in the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(CORRELATION_HEADER.encode())
        correlation_id = _valid_correlation_id(incoming) or uuid.uuid4().hex
        scope.setdefault("state", {})["correlation_id"] = correlation_id

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((CORRELATION_HEADER.encode(), correlation_id.encode()))
                message["headers"] = headers
            await send(message)

        with structlog.contextvars.bound_contextvars(correlation_id=correlation_id):
            await self.app(scope, receive, send_with_header)


_CORRELATION_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _valid_correlation_id(raw: bytes | None) -> str | None:
    """A client's id is kept only if it is short and plain (it ends up in logs and headers)."""
    if raw is None:
        return None
    value = raw.decode("latin-1")
    return value if _CORRELATION_ID.match(value) else None
