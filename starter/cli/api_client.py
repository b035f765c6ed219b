"""The CLI's client of the HTTP API: one place that turns connection failures and error
answers into a sentence for the user instead of a traceback."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

DEFAULT_API_URL = "http://127.0.0.1:8000"


class ApiUnavailable(Exception):
    """The API could not be reached or answered with an error; the message says which."""


def demo_key(data_dir: Path) -> str | None:
    """The admin key `nurture demo` generated, so the CLI works against the demo as is."""
    keys = data_dir / "api_keys"
    if not keys.exists():
        return None
    for pair in keys.read_text().strip().split(","):
        role, _, key = pair.partition(":")
        if role == "admin":
            return key
    return None


def _message(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(detail, list):
        parts = []
        for problem in detail[:5]:
            where = ".".join(str(p) for p in problem.get("loc", []) if p != "body")
            parts.append(f"{where}: {problem.get('msg')}" if where else str(problem.get("msg")))
        return "; ".join(parts)
    return str(detail)


@dataclass
class NurtureApi:
    """A synchronous client of the Nurture API (`base_url`, `key`)."""

    base_url: str
    key: str | None
    timeout: float = 30.0

    def _client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=self.timeout)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request; raise `ApiUnavailable` with a clear message on any failure."""
        try:
            with self._client() as client:
                response = client.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise ApiUnavailable(
                f"cannot reach the Nurture API at {self.base_url}: is `nurture api` (or "
                "`./scripts/demo`) running? Set NURTURE_API_URL or --api-url to point elsewhere."
            ) from None
        except httpx.TimeoutException:
            raise ApiUnavailable(
                f"the Nurture API at {self.base_url} did not answer in time"
            ) from None
        if response.status_code == 401:
            raise ApiUnavailable(
                f"the API refused the key ({_message(response)}): set NURTURE_API_KEY or --api-key"
            )
        if response.status_code == 503:
            raise ApiUnavailable(f"the API is up but {_message(response)} (is Temporal running?)")
        if response.status_code >= 400:
            raise ApiUnavailable(f"{response.status_code}: {_message(response)}")
        return response

    def get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", path, params=clean).json()

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.request("POST", path, json=body, **kwargs).json()


def api_from(url: str | None, key: str | None, data_dir: Path) -> NurtureApi:
    """The client for `url` and `key`, falling back to the environment and the demo."""
    return NurtureApi(
        base_url=(url or os.environ.get("NURTURE_API_URL") or DEFAULT_API_URL).rstrip("/"),
        key=key or os.environ.get("NURTURE_API_KEY") or demo_key(data_dir),
    )
