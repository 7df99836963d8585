"""The codec server (``adx codec-server``): encodes and decodes payloads for the Temporal UI
and CLI.

Protocol (https://docs.temporal.io/codec-server): ``POST /encode`` and ``POST /decode`` take
and return proto3 JSON ``{"payloads": [{"metadata": {"encoding": "<b64>"}, "data": "<b64>"}]}``.
The same routes answer under a ``/{namespace}/`` prefix, because the CLI substitutes
``{namespace}`` in its codec endpoint. One key ring serves every namespace.

The browser UI calls this server directly, so it answers CORS preflights for the Temporal UI's
origin and ``ADX_CODEC_CORS_ORIGINS``. With ``ADX_CODEC_SERVER_TOKEN`` set, encode/decode need
``Authorization: Bearer <token>``; without it the server refuses to start in production (it
would hand plaintext to anyone who can reach it) unless ``ADX_CODEC_SERVER_ANONYMOUS`` says it
is reachable from a trusted host alone, and only warns in dev/test, where the dev UI has no
token to send.
"""

from __future__ import annotations

import argparse
import hmac
from http import HTTPStatus
from typing import Any, Literal

import uvicorn
from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.api.common.v1 import Payloads

from adx.bodies import BodyTooLarge, read_limited
from adx.logging import configure_logging, get_logger
from adx.problems import problem
from adx.request_metrics import RequestMetrics, RequestMetricsMiddleware
from adx.settings import Settings, get_settings
from workflow_client.codec import EncryptionCodec, KeyRing, KeyRingError, PayloadDecryptionError

HELP = "serve the codec server that decrypts Temporal payloads for the Temporal UI and CLI"

TOKEN_ENV = "ADX_CODEC_SERVER_TOKEN"  # noqa: S105 (the variable's name, not a secret)
# A decode batch holds at most a few Temporal payloads (each ≤ 2 MiB by default); anything far
# larger is not a UI or CLI request.
MAX_BODY_BYTES = 32 * 1024 * 1024
ALLOWED_HEADERS = ("content-type", "x-namespace", "authorization")
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0", "::"})

Operation = Literal["encode", "decode"]


class CodecServerConfigError(ValueError):
    """The codec server's settings do not allow it to start."""


def allowed_origins(settings: Settings) -> list[str]:
    """The Temporal UI's origin and ``codec_cors_origins``.

    On a loopback host the UI is reached as ``localhost`` as often as ``127.0.0.1``, and a
    browser sends whichever the user typed, so both spellings are allowed.
    """
    ui_port = settings.port("temporal_ui")
    origins = [settings.url("temporal_ui")]
    if settings.host in _LOOPBACK_HOSTS:
        origins += [f"http://localhost:{ui_port}", f"http://127.0.0.1:{ui_port}"]
    origins += settings.codec_cors_origins
    # A browser's Origin never ends with "/": a configured trailing slash would never match.
    return list(dict.fromkeys(origin.rstrip("/") for origin in origins))


def _expected_token(settings: Settings) -> bytes | None:
    token = settings.codec_server_token
    if token is None or not token.get_secret_value().strip():
        return None
    return token.get_secret_value().strip().encode()


def bearer_token_matches(authorization: str | None, expected: bytes) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time."""
    if authorization is None:
        return False
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.strip().encode(), expected)


def create_codec_app(settings: Settings, keyring: KeyRing) -> Starlette:
    """The codec server's ASGI app.

    Raises :class:`CodecServerConfigError` in production when no token is configured.
    """
    log = get_logger(__name__)
    token = _expected_token(settings)
    if token is None:
        if settings.is_production and not settings.codec_server_anonymous:
            raise CodecServerConfigError(
                f"{TOKEN_ENV} is not set: in production the codec server requires a bearer "
                "token, or anyone who can reach it could decrypt payloads"
            )
        log.warning(
            "codec_server_without_auth",
            detail=f"{TOKEN_ENV} is not set: encode/decode accept unauthenticated requests "
            "(outside production, or with ADX_CODEC_SERVER_ANONYMOUS)",
        )
    codec = EncryptionCodec(keyring)
    origins = allowed_origins(settings)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def apply(request: Request, operation: Operation) -> Response:
        namespace = request.path_params.get("namespace") or request.headers.get("x-namespace")
        if token is not None and not bearer_token_matches(
            request.headers.get("authorization"), token
        ):
            log.warning("codec_request_unauthorized", operation=operation, namespace=namespace)
            return problem(
                401,
                "Unauthorized",
                "a valid 'Authorization: Bearer <token>' header is required",
                headers={"WWW-Authenticate": 'Bearer realm="codec-server"'},
            )
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type != "application/json":
            # Requiring JSON also forces browsers to preflight, so CORS always applies.
            return problem(415, "Unsupported Media Type", "send the payloads as application/json")
        try:
            body = await read_limited(request, MAX_BODY_BYTES)
        except BodyTooLarge as error:
            return problem(413, "Content Too Large", str(error))
        try:
            payloads = json_format.Parse(
                body.decode("utf-8"), Payloads(), ignore_unknown_fields=True
            )
        except (UnicodeDecodeError, json_format.Error) as err:
            return problem(
                400,
                "Bad Request",
                'expected proto3 JSON {"payloads": [{"metadata": {...}, "data": "<base64>"}]}: '
                f"{_short(str(err))}",
            )
        try:
            if operation == "encode":
                result = await codec.encode(payloads.payloads)
            else:
                result = await codec.decode(payloads.payloads)
        except PayloadDecryptionError as err:
            log.warning("codec_decode_failed", namespace=namespace, key_id=err.key_id)
            return problem(422, "Unprocessable Content", str(err))
        log.debug("codec_request", operation=operation, namespace=namespace, payloads=len(result))
        document: dict[str, Any] = json_format.MessageToDict(Payloads(payloads=result))
        document.setdefault("payloads", [])  # proto3 JSON drops empty lists; clients expect it
        # Decoded payloads are plaintext: no cache may keep them.
        return JSONResponse(document, headers={"Cache-Control": "no-store"})

    async def encode(request: Request) -> Response:
        return await apply(request, "encode")

    async def decode(request: Request) -> Response:
        return await apply(request, "decode")

    async def http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return problem(exc.status_code, _title(exc.status_code), exc.detail, headers=exc.headers)

    metrics = RequestMetrics("codec")
    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics.endpoint(), methods=["GET"]),
            Route("/encode", encode, methods=["POST"]),
            Route("/decode", decode, methods=["POST"]),
            Route("/{namespace}/encode", encode, methods=["POST"]),
            Route("/{namespace}/decode", decode, methods=["POST"]),
        ],
        middleware=[
            Middleware(RequestMetricsMiddleware, metrics=metrics),
            Middleware(
                CORSMiddleware,
                allow_origins=origins,
                allow_methods=["POST", "OPTIONS"],
                allow_headers=list(ALLOWED_HEADERS),
                allow_credentials=True,
                # Lets a UI served from a public address reach a codec server on loopback.
                allow_private_network=True,
            ),
        ],
        exception_handlers={HTTPException: http_error},
    )


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# The `adx codec-server` command -----------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="interface to bind (default: ADX_HOST)")
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="port to listen on (default: the codec_server port from settings, 8089 + offset)",
    )


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    configure_logging(settings)
    log = get_logger(__name__)
    host: str = args.host or settings.host
    port: int = args.port if args.port is not None else settings.port("codec_server")
    try:
        keyring = KeyRing.from_settings(settings)
        app = create_codec_app(settings, keyring)
    except (KeyRingError, CodecServerConfigError) as err:
        log.error("codec_server_not_started", reason=str(err))
        return 2
    log.info(
        "codec_server_starting",
        url=f"http://{host}:{port}",
        active_key_id=keyring.active_key_id,
        key_ids=list(keyring.key_ids),
        cors_origins=allowed_origins(settings),
    )
    uvicorn.run(app, host=host, port=port, log_config=None, server_header=False)
    return 0
