"""``supportstream connect http``: one aiohttp service for every channel that pushes over HTTP.

Routes (docs/CONNECTORS.md has the set-up of each channel):

=====================  ========================================================================
``POST /telegram``     Bot API updates; ``X-Telegram-Bot-Api-Secret-Token`` must match
``GET  /whatsapp``     the Cloud API verification handshake (``hub.mode=subscribe``,
                       ``hub.verify_token``) answered with ``hub.challenge``
``POST /whatsapp``     Cloud API webhooks; ``X-Hub-Signature-256`` must sign the raw body
``POST /vk``           Callback API events; ``secret`` must match; ``confirmation`` is answered
                       with the configured code, everything else with the literal ``ok``
``POST /{source}``     ``chat``, ``form``, ``phone``, ``agent``, ``survey``, ``crm``, ``qa`` with
                       ``Authorization: Bearer <token>`` of that source
``GET  /healthz``      liveness
=====================  ========================================================================

A request is answered 200 only after the broker acknowledged the raw envelope (idempotent
producer, acks=all). An authenticated body that is well-formed JSON is published whatever its
shape: one the parsers cannot understand is answered 200 ``{"status": "accepted",
"dead_letter": reason}`` and becomes a dead letter downstream (refused, the channel would retry
and then drop the message). Otherwise nothing is published and the answer is JSON
``{"error": ..., "source": ...}``: 401 (no credential) / 403 (a wrong one), 400 (the body is
not JSON, or not UTF-8), 413 (body over ``max_body_bytes``), 404 (a source whose
secret is not configured is disabled), 503 (broker unavailable; the channel retries). Bodies that
are understood but not contacts (a Telegram edit, WhatsApp statuses, VK ``group_join``) are
answered 200 and not published (counted in ``supportstream_connector_ignored_total``).

Order of checks: the header credential (cheap, before the body is read), the body size, the
body credential (WhatsApp signature, VK secret), the parsers, the broker.

Shutdown (``stop``, on SIGTERM): the listening socket closes first, requests in flight finish
(publishing included, up to ``shutdown_timeout_s``), then the producer is flushed and stopped.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from processors.ids import Pseudonymizer
from processors.model import Millis
from processors.pii import Masker
from streams.connectors import auth
from streams.connectors.envelope import Clock, Verdict, check_json, wall_clock
from streams.connectors.metrics import ConnectorMetrics
from streams.connectors.publisher import Publisher, PublishError
from streams.settings import HTTP_TOKEN_SOURCES, ConnectSettings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, source: str, reason: str, **headers: str) -> web.Response:
    return web.json_response({"error": reason, "source": source}, status=status, headers=headers)


class _Refusal(Exception):
    """A request refused before anything is published; becomes the JSON error answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class HttpConnector:
    """The HTTP service. ``start`` binds and serves; ``stop`` shuts down gracefully.

    Everything a test replaces is a parameter: the publisher (a real broker or a fake), the
    clock, the metrics registry, the logger.
    """

    def __init__(
        self,
        settings: ConnectSettings,
        publisher: Publisher,
        *,
        topic: str,
        pseudo: Pseudonymizer,
        registry: CollectorRegistry,
        clock: Clock = wall_clock,
        logger: Any = None,
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.topic = topic
        self.metrics = ConnectorMetrics(registry)
        self._pseudo = pseudo
        self._mask = Masker().mask
        self._clock = clock
        self._log = logger if logger is not None else structlog.get_logger("supportstream.connect")
        self._sequence = 0
        self._runner: web.AppRunner | None = None
        self.app = self._build_app()

    # -- lifecycle --------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        # client_max_size makes aiohttp refuse a longer body while reading it (chunked bodies
        # included), so an oversized body is never held in memory whole.
        app = web.Application(client_max_size=self.settings.max_body_bytes)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_post("/telegram", self._telegram)
        app.router.add_get("/whatsapp", self._whatsapp_verify)
        app.router.add_post("/whatsapp", self._whatsapp)
        app.router.add_post("/vk", self._vk)
        for source in HTTP_TOKEN_SOURCES:
            app.router.add_post(f"/{source}", self._bearer_source(source))
        return app

    async def start(self, host: str | None = None, port: int | None = None) -> int:
        """Listen on ``host:port`` (default: the settings'; port 0 picks a free one) and return
        the port bound."""
        runner = web.AppRunner(
            self.app,
            access_log=None,  # one structured line per request is written by the handlers
            handle_signals=False,
            shutdown_timeout=self.settings.shutdown_timeout_s,
        )
        await runner.setup()
        site = web.TCPSite(
            runner,
            host if host is not None else self.settings.http_host,
            port if port is not None else self.settings.http_port,
        )
        await site.start()
        self._runner = runner
        addresses = runner.addresses
        bound = int(addresses[0][1]) if addresses else int(port or self.settings.http_port)
        self._log.info("http connector listening", port=bound, topic=self.topic)
        return bound

    async def stop(self) -> None:
        """Graceful: stop listening, let in-flight requests finish, then flush the producer."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        await self.publisher.close()
        self._log.info("http connector stopped")

    # -- routes -----------------------------------------------------------------------------

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _telegram(self, request: web.Request) -> web.StreamResponse:
        secret = self.settings.telegram_secret_token

        async def handle() -> web.StreamResponse:
            self._require(secret)
            self._check(
                auth.check_telegram(request.headers.get("X-Telegram-Bot-Api-Secret-Token"), secret)
            )
            body = await self._body(request)
            return await self._accept("telegram", self._text(body))

        return await self._answer("telegram", handle)

    async def _whatsapp_verify(self, request: web.Request) -> web.StreamResponse:
        expected = self.settings.whatsapp_verify_token

        async def handle() -> web.StreamResponse:
            self._require(expected)
            query = request.query
            if query.get("hub.mode") != "subscribe":
                raise _Refusal(400, "hub.mode must be subscribe")
            token = query.get("hub.verify_token", "")
            if not token:
                raise _Refusal(401, "missing hub.verify_token")
            if not auth.same(token, expected):
                raise _Refusal(403, "wrong hub.verify_token")
            # Meta expects the challenge echoed as the whole body.
            return web.Response(text=query.get("hub.challenge", ""), content_type="text/plain")

        return await self._answer("whatsapp", handle)

    async def _whatsapp(self, request: web.Request) -> web.StreamResponse:
        secret = self.settings.whatsapp_app_secret

        async def handle() -> web.StreamResponse:
            self._require(secret)
            signature = request.headers.get("X-Hub-Signature-256")
            if not signature:
                raise _Refusal(401, "missing X-Hub-Signature-256")
            body = await self._body(request)
            self._check(auth.check_whatsapp(signature, body, secret))
            return await self._accept("whatsapp", self._text(body))

        return await self._answer("whatsapp", handle)

    async def _vk(self, request: web.Request) -> web.StreamResponse:
        secret = self.settings.vk_secret

        async def handle() -> web.StreamResponse:
            self._require(secret)
            body = await self._body(request)
            text = self._text(body)
            try:
                event = json.loads(text)
            except ValueError:
                event = None
            if not isinstance(event, dict):
                # No secret can be read from it; the parser names what is wrong.
                raise _Refusal(400, "invalid json: a vk callback body must be a json object")
            confirmation = event.get("type") == "confirmation"
            # VK puts the secret in every event; whether the one-off confirmation request
            # carries it is not documented, so there a missing secret is tolerated (a wrong one
            # is not). The answer, the confirmation string, only proves this URL to VK.
            if not (confirmation and event.get("secret") in (None, "")):
                self._check(auth.check_vk(event.get("secret"), secret))
            group = self.settings.vk_group_id
            if group is not None and event.get("group_id") != group:
                raise _Refusal(403, "event for another community (group_id)")
            if confirmation:
                if not self.settings.vk_confirmation:
                    raise _Refusal(404, "SUPPORTSTREAM_VK_CONFIRMATION is not configured")
                self.metrics.ignored.labels("vk").inc()
                return web.Response(text=self.settings.vk_confirmation, content_type="text/plain")
            answer = await self._accept("vk", text)
            if answer.status != 200:
                return answer
            # The Callback API wants the literal body "ok" for every event it delivered.
            return web.Response(text="ok", content_type="text/plain")

        return await self._answer("vk", handle)

    def _bearer_source(self, source: str) -> Handler:
        async def route(request: web.Request) -> web.StreamResponse:
            token = self.settings.bearer_tokens.get(source, "")

            async def handle() -> web.StreamResponse:
                self._require(token, f"SUPPORTSTREAM_{source.upper()}_TOKEN")
                self._check(auth.check_bearer(request.headers.get("Authorization"), token))
                body = await self._body(request)
                return await self._accept(source, self._text(body))

            return await self._answer(source, handle)

        return route

    # -- the steps every route shares ------------------------------------------------------

    async def _answer(
        self, source: str, handle: Callable[[], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        started = time.monotonic()
        try:
            response = await handle()
        except _Refusal as refusal:
            # A 503 tells the channel (and any HTTP client) when trying again makes sense.
            retry = {"Retry-After": "5"} if refusal.status == 503 else {}
            response = _error(refusal.status, source, refusal.reason, **retry)
            if refusal.status in (400, 413):
                self.metrics.refused(source, refusal.reason)
            level = self._log.warning if refusal.status < 500 else self._log.error
            level(
                "request refused",
                source=source,
                status=refusal.status,
                reason=refusal.reason,
                ms=round((time.monotonic() - started) * 1000, 1),
            )
        except Exception as exc:  # a bug must not answer 200, nor leak a traceback to the caller
            self._log.error(
                "request failed", source=source, error=type(exc).__name__, exc_info=True
            )
            response = _error(500, source, "internal error, nothing was published")
        self.metrics.request(source, response.status)
        return response

    def _require(self, secret: str, name: str = "") -> None:
        if not secret:
            # A channel without its secret is disabled, never open to anyone.
            raise _Refusal(404, f"this source is not enabled ({name or 'its secret is not set'})")

    @staticmethod
    def _check(denied: auth.Denied | None) -> None:
        if denied is not None:
            raise _Refusal(denied.status, denied.reason)

    async def _body(self, request: web.Request) -> bytes:
        limit = self.settings.max_body_bytes
        length = request.content_length
        if length is not None and length > limit:
            raise _Refusal(413, f"body too large: {length} bytes, the limit is {limit}")
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise _Refusal(413, f"body too large: the limit is {limit} bytes") from None

    @staticmethod
    def _text(body: bytes) -> str:
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Refusal(
                400, f"invalid json: body is not valid UTF-8 (byte {exc.start})"
            ) from None

    def _next_ref(self, source: str, now: Millis) -> str:
        self._sequence += 1
        return f"{self.settings.connector_name}:{source}:{now}:{self._sequence}"

    async def _accept(self, source: str, text: str) -> web.Response:
        now = self._clock()
        verdict: Verdict = check_json(
            source,
            text,
            at=now,
            received_at=now,
            connector=self.settings.connector_name,
            ref=self._next_ref(source, now),
            pseudo=self._pseudo,
            mask=self._mask,
        )
        envelope = verdict.envelope
        if verdict.refused is not None and envelope is None:
            raise _Refusal(400, verdict.refused.reason)  # not JSON: nothing to publish
        if envelope is None:
            self.metrics.ignored.labels(source).inc()
            reason = verdict.ignored[0].reason if verdict.ignored else "not a contact"
            self._log.info("body ignored", source=source, reason=reason)
            return web.json_response({"status": "ignored", "reason": reason})
        started = time.monotonic()
        try:
            await self.publisher.publish(self.topic, envelope.key, envelope.encode())
        except PublishError as exc:
            raise _Refusal(503, f"not accepted, retry later: {exc}") from None
        except asyncio.CancelledError:
            raise
        elapsed = time.monotonic() - started
        self.metrics.accepted(source, [c.channel for c in verdict.contacts], elapsed)
        self.metrics.lag(envelope.at, self._clock())
        if verdict.refused is not None:
            # Published as it came; the parse stage makes it a dead letter with this reason.
            self._log.warning(
                "body published, the parser will dead-letter it",
                source=source,
                reason=verdict.refused.reason,
                ms=round(elapsed * 1000, 1),
            )
            return web.json_response({"status": "accepted", "dead_letter": verdict.refused.reason})
        self._log.info(
            "record published",
            source=source,
            conversation_id=envelope.key,
            contacts=len(verdict.contacts),
            ms=round(elapsed * 1000, 1),
        )
        return web.json_response({"status": "accepted", "conversation_id": envelope.key})
