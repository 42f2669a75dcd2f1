"""`ApiClient`: JSON POSTs to an OpenAI-compatible server, with bounded retries.

A request is retried on HTTP 408, 429 and 5xx answers and on connection errors and timeouts, after an
exponential backoff (``backoff_s * 2**k`` plus up to 25% jitter, at most ``max_wait_s``), or after the
server's own ``Retry-After`` / ``retry-after-ms`` when it sends one (also capped at ``max_wait_s``). After
``attempts`` tries, or at once on any other answer (400, 401, 404, ...), it raises `RequestFailed`.
The API key is sent as a bearer token and never appears in a message, a repr or a saved config.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from typing import Any

__all__ = ["Retry", "RequestFailed", "ApiClient", "RETRY_STATUS", "FATAL_STATUS"]

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})  # and any other 5xx
FATAL_STATUS = frozenset({401, 403, 404})  # every request would fail the same way: stop the run


@dataclass(frozen=True)
class Retry:
    """How often and how long to retry a request that may succeed later."""

    attempts: int = 5  # tries in all, the first included
    backoff_s: float = 1.0  # the wait before the second try; doubled before each next one
    max_wait_s: float = 60.0  # no single wait is longer (a server's Retry-After included)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1 (1: no retry), got {self.attempts}")
        if self.backoff_s < 0 or self.max_wait_s < 0:
            raise ValueError(
                f"backoff_s and max_wait_s must be >= 0, got {self.backoff_s}, {self.max_wait_s}"
            )

    def wait(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait after failed try `attempt` (1-based)."""
        if retry_after is not None:
            return min(max(0.0, retry_after), self.max_wait_s)
        base = self.backoff_s * 2 ** (attempt - 1)
        return min(base * (1 + 0.25 * rng.random()), self.max_wait_s)


class RequestFailed(RuntimeError):
    """A request that got no usable answer: out of attempts, or refused for good. `status` is the last
    HTTP status (None for a connection error or a malformed reply); `attempts` how many tries were made."""

    def __init__(self, message: str, *, status: int | None, attempts: int) -> None:
        super().__init__(message)
        self.status, self.attempts = status, attempts

    @property
    def fatal(self) -> bool:
        """The server refused the request for a reason every request shares (bad key, wrong URL or model)."""
        return self.status in FATAL_STATUS


def _retry_after(headers: Message | None) -> float | None:
    """The server's requested wait in seconds (``retry-after-ms``, ``Retry-After`` seconds or date)."""
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        when = email.utils.parsedate_to_datetime(value) if value.strip() else None
        return None if when is None else when.timestamp() - time.time()


class ApiClient:
    """POST JSON to ``base_url + path`` with retries (see the module doc). `api_key`: None reads
    ``$OPENAI_API_KEY`` (no key: no Authorization header). `sleep` is how waits are taken."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 600.0,
        retry: Retry = Retry(),  # noqa: B008  (frozen: shared safely)
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base URL must start with http:// or https://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout_s, self.retry, self.sleep = timeout_s, retry, sleep
        self._rng = random.Random()

    def __repr__(self) -> str:
        return f"ApiClient({self.base_url!r}, key={'set' if self._key else 'none'})"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        return headers

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """The JSON answer to POST `body` at `path`; retried as the module doc says, else `RequestFailed`."""
        url = self.base_url + path
        data = json.dumps(body).encode()
        for attempt in range(1, self.retry.attempts + 1):
            status: int | None = None
            headers: Message | None = None
            try:
                req = urllib.request.Request(url, data=data, headers=self._headers())
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    raw = resp.read()
                try:
                    reply = json.loads(raw)
                except json.JSONDecodeError:
                    raise RequestFailed(
                        f"POST {url}: the reply is not JSON: {raw[:200]!r}", status=None, attempts=attempt
                    ) from None
                if not isinstance(reply, dict):
                    raise RequestFailed(f"POST {url}: the reply is not a JSON object", status=None,
                                        attempts=attempt)  # fmt: skip
                return reply
            except urllib.error.HTTPError as e:
                status, headers = e.code, e.headers
                problem = f"HTTP {e.code}: {_error_text(e)}"
                if e.code not in RETRY_STATUS and e.code < 500:
                    raise RequestFailed(f"POST {url}: {problem}{_hint(e.code)}", status=e.code,
                                        attempts=attempt) from None  # fmt: skip
            except (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException) as e:
                reason = e.reason if isinstance(e, urllib.error.URLError) else e
                problem = f"{type(reason).__name__}: {reason}"
            if attempt == self.retry.attempts:
                raise RequestFailed(
                    f"POST {url}: {problem} (gave up after {attempt} attempts)",
                    status=status,
                    attempts=attempt,
                )
            self.sleep(self.retry.wait(attempt, _retry_after(headers), self._rng))
        raise AssertionError("unreachable")  # the loop returns or raises


def _error_text(e: urllib.error.HTTPError) -> str:
    """The server's error message (OpenAI's ``{"error": {"message"}}`` shape, else the body's start)."""
    try:
        raw = e.read()
    except (OSError, http.client.HTTPException):
        return e.reason or ""
    try:
        doc = json.loads(raw)
        message = doc["error"]["message"] if isinstance(doc.get("error"), dict) else doc.get("error") or doc
        return str(message)[:300]
    except (json.JSONDecodeError, AttributeError, KeyError, TypeError):
        return raw[:300].decode("utf-8", "replace")


def _hint(status: int) -> str:
    if status in (401, 403):
        return (
            " (check the API key: rft eval reads it from $OPENAI_API_KEY or the variable --api-key-env names)"
        )
    if status == 404:
        return " (check --base-url, which ends in /v1, and --model: GET <base-url>/models lists the served names)"
    return ""
