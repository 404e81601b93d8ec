"""The webhook sink: POSTs each submission as JSON, signed per Standard Webhooks.

Headers `webhook-id`, `webhook-timestamp` and `webhook-signature` (standardwebhooks).
`webhook-id` is the same on every attempt of one delivery, so a receiver dedupes on it:
the `delivery_key` the outbox sets on an operator's replay, else the `submission_id`.
Each attempt is signed afresh with the current time. 2xx means delivered; 408, 429, 5xx,
timeouts and connection errors are retried; any other answer gives up at once.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from standardwebhooks import Webhook

from collector.sinks import DeliveryError, Submission

RETRYABLE_STATUSES = frozenset({408, 429})
BODY_IN_MESSAGE = 300
BODY_READ_LIMIT = 4096
SIGNATURE_HEADERS = frozenset({"webhook-id", "webhook-timestamp", "webhook-signature"})
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class WebhookSink:
    """Signs and POSTs each submission to `url`; one shared HTTP client per sink."""

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        timeout_seconds: float = 10.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url
        parsed = httpx.URL(url)
        port = f":{parsed.port}" if parsed.port else ""
        # For messages: the origin only, as a path or query may carry a token.
        self.where = f"{parsed.scheme}://{parsed.host}{port}"
        self.timeout_seconds = timeout_seconds
        self.headers = dict(headers or {})
        self._signer = Webhook(secret)
        self._client: httpx.AsyncClient | None = None

    def _make_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout_seconds),
            headers=self.headers,
            follow_redirects=False,
        )

    async def start(self) -> None:
        if self._client is None:
            self._client = self._make_client()

    def sign(self, msg_id: str, body: bytes, now: datetime | None = None) -> dict[str, str]:
        """The three Standard Webhooks headers for `body`, signed at `now` (default: now)."""
        now = now or datetime.now(UTC)
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._signer.sign(msg_id, now, body.decode()),
        }

    async def deliver(self, submission: Submission) -> None:
        try:
            msg_id = str(submission.get("delivery_key") or submission["submission_id"])
            body = orjson.dumps(submission)
        except (KeyError, TypeError) as exc:
            raise DeliveryError(f"submission cannot be sent: {exc}", retryable=False) from exc
        if self._client is None:
            self._client = self._make_client()
        headers = {"content-type": "application/json", **self.sign(msg_id, body)}
        try:
            async with asyncio.timeout(self.timeout_seconds):
                async with self._client.stream(
                    "POST", self.url, content=body, headers=headers
                ) as response:
                    status = response.status_code
                    if 200 <= status < 300:
                        return
                    text = await _head(response)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise DeliveryError(
                f"POST {self.where}: no answer within {self.timeout_seconds:g} s"
            ) from exc
        except httpx.TransportError as exc:
            raise DeliveryError(f"POST {self.where}: {type(exc).__name__}: {exc}") from exc
        retryable = status in RETRYABLE_STATUSES or status >= 500
        detail = f"POST {self.where}: HTTP {status}"
        if 300 <= status < 400:
            detail += " (a redirect: set url to the final address)"
        raise DeliveryError(f"{detail}: {text}" if text else detail, retryable=retryable)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


async def _head(response: httpx.Response) -> str:
    """The start of a response body, for an error message."""
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size >= BODY_READ_LIMIT:
                break
    except httpx.HTTPError:
        pass  # the status says enough
    return b"".join(chunks).decode("utf-8", "replace")[:BODY_IN_MESSAGE].strip()


def check_url(url: Any) -> str:
    if not isinstance(url, str) or not url:
        raise ValueError("option 'url' must be an http:// or https:// URL")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise ValueError(f"option 'url' is not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        shown = f"{parsed.scheme}://" if parsed.scheme else "no scheme"
        raise ValueError(f"option 'url' must be an http:// or https:// URL (got {shown})")
    return url


def check_secret(secret: Any) -> str:
    hint = "option 'secret' must be a Standard Webhooks secret: 'whsec_' followed by base64"
    if not isinstance(secret, str) or not secret.startswith("whsec_"):
        raise ValueError(hint)
    try:
        Webhook(secret)
    except Exception:  # the library raises several kinds; none may stop start-up uglily
        raise ValueError(hint) from None
    return secret


def check_headers(headers: Any) -> dict[str, str]:
    if not isinstance(headers, Mapping):
        raise ValueError("option 'headers' must be a table of header names to string values")
    out: dict[str, str] = {}
    for key, value in headers.items():
        if not isinstance(key, str) or not HEADER_NAME.fullmatch(key):
            raise ValueError(f"option 'headers': {key!r} is not a valid header name")
        if key.lower() in SIGNATURE_HEADERS:
            raise ValueError(f"option 'headers': {key!r} is set by the signature; leave it out")
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            raise ValueError(f"option 'headers': the value of {key!r} must be a one-line string")
        out[key] = value
    return out


def from_config(*, name: str, options: dict[str, Any], base_dir: Path) -> WebhookSink:
    """`[[sinks]] type = "webhook"`: `url`, `secret` (required), `timeout_seconds`, `headers`."""
    missing = [k for k in ("url", "secret") if k not in options]
    if missing:
        raise ValueError(f"missing required option(s): {', '.join(missing)}")
    url = check_url(options.pop("url"))
    secret = check_secret(options.pop("secret"))
    timeout = options.pop("timeout_seconds", 10)
    headers = check_headers(options.pop("headers", {}))
    if options:
        raise ValueError(f"unknown option(s) for webhook: {', '.join(sorted(options))}")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ValueError(f"option 'timeout_seconds' must be a number > 0, got {timeout!r}")
    return WebhookSink(url, secret, timeout_seconds=float(timeout), headers=headers)
