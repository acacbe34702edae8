"""A small synchronous client of the logferry REST API, for the CLI and scripts.

Every failure becomes one :class:`ApiCallError` whose message says what happened and what to do: the API's
own ``error`` and ``hint`` for an answered request, or "nothing listens at URL: start the relay…" when the
connection is refused. Proxy variables from the environment are ignored (``trust_env=False``): the API is
normally on 127.0.0.1 or the site network, and a proxy in between would only misroute it.

This module must never print: the CLI decides how to show results and errors.
"""

from __future__ import annotations

from typing import Any

import httpx

from logferry.errors import LogferryError


class ApiCallError(LogferryError):
    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def _start_hint(url: str) -> str:
    role = "collector" if url.rstrip("/").endswith(":8171") else "relay"
    return (
        f"start it with `logferry {role} --config {role}.toml` (api_listen sets the address), "
        "or point --api at the right address"
    )


def api_base(address: str) -> str:
    """The API's base URL from what a person typed: ``http://host:port``, or ``host:port`` as ``api_listen``
    writes it (http is meant); raises ApiCallError for what is neither."""
    url = address.strip()
    if "://" not in url:
        url = "http://" + url
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ApiCallError(f"{address!r} is not an API address ({exc}); give HOST:PORT or http://HOST:PORT, "
                           "as api_listen in the role's config") from None  # fmt: skip
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ApiCallError(f"{address!r} is not an API address; give HOST:PORT or http://HOST:PORT, as "
                           "api_listen in the role's config")  # fmt: skip
    return url.rstrip("/")


class ApiClient:
    def __init__(self, base_url: str, token: str = "", operator: str = "", timeout_s: float = 30.0) -> None:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if operator:
            headers["X-Logferry-Operator"] = operator
        self.base_url = api_base(base_url)
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s, trust_env=False)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v is not None and v != ""}
        return self._call("GET", path, params=clean)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._call("POST", path, json=body)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        url = f"{self.base_url}{path}"
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise ApiCallError(
                f"nothing answers at {self.base_url} ({exc}); {_start_hint(self.base_url)}"
            ) from None
        except httpx.TimeoutException:
            raise ApiCallError(
                f"{method} {url} timed out; the role may be overloaded: retry, or check its log"
            ) from None
        except httpx.HTTPError as exc:
            raise ApiCallError(f"{method} {url} failed: {exc}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success:
            if body is None:
                raise ApiCallError(f"{method} {url} answered {response.status_code} without JSON; is this a "
                                   "logferry API?")  # fmt: skip
            return body
        if isinstance(body, dict) and "error" in body:
            hint = f" — {body['hint']}" if body.get("hint") else ""
            raise ApiCallError(f"{body['error']}{hint}", response.status_code)
        raise ApiCallError(f"{method} {url} answered {response.status_code}: {response.text[:200]}",
                           response.status_code)  # fmt: skip
