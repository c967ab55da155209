"""The HTTP client of a stepline server's ingest API (docs/wire.md): keep-alive, gzip bodies, clear errors.

    client = RemoteClient("http://127.0.0.1:8683", token=os.environ.get("STEPLINE_TOKEN"))
    state = client.open_run("vision", "a1b2c3d4", meta)       # {"max_seq": {...}, "files": {...}}
    client.send_events("vision", "a1b2c3d4", [record, ...])
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from stepline import events
from stepline.errors import ConfigError, SteplineError, warn
from stepline.urls import is_loopback

FORM = "http://host:8683 (a stepline server)"


def transport_maker(url: str, token: str | None) -> Callable[[], RemoteClient]:
    """A stepline server's URL, checked, as a maker of one client per run (``token`` or ``STEPLINE_TOKEN``)."""
    if not urlsplit(url).netloc:
        raise ConfigError(f"backend {url!r} must look like {FORM}")
    return lambda: RemoteClient(url, token)


class RemoteUnavailable(SteplineError):
    """The server cannot be reached or answered 5xx / 429: worth trying again later."""


class RemoteRejected(SteplineError):
    """The server refused the request (bad token, bad payload): trying again would not help."""


class RemoteUnauthorized(RemoteRejected):
    """A stepline server refused the run's token, or needs one and got none."""


def peer_base_url(url: str, scheme: str) -> str:
    """``mlflow+http://host:port/`` -> ``http://host:port``, checked."""
    base = url[len(scheme):].rstrip("/")
    if urlsplit(base).scheme not in ("http", "https") or not urlsplit(base).netloc:
        raise ConfigError(f"backend {url!r} must look like {scheme}http://host:port")
    return base


def reachable_response(session: requests.Session, method: str, url: str, base: str, timeout: float,
                       **kwargs: Any) -> requests.Response:
    """The peer's response; RemoteUnavailable when it cannot be reached or answers 5xx / 429 (worth retrying)."""
    try:
        response = session.request(method, url, timeout=timeout, **kwargs)
    except requests.RequestException as err:
        raise RemoteUnavailable(f"cannot reach {base}: {err.__class__.__name__}") from None
    if response.status_code >= 500 or response.status_code == 429:
        raise RemoteUnavailable(f"{base} answered {response.status_code}")
    return response


class WarnOnce:
    """A peer transport's warnings about what the peer cannot keep: each ``what`` once per run.

        self._once = WarnOnce(url, "; it stays in the local logbook")
        self._once("file", "TrainTrack keeps no files")
    """

    def __init__(self, url: str, suffix: str = "") -> None:
        self.url, self.suffix = url, suffix
        self._given: set[str] = set()

    def __call__(self, what: str, message: str) -> None:
        if what not in self._given:
            self._given.add(what)
            warn(f"stepline: {message}{self.suffix} ({self.url})")


def json_body(response: requests.Response, fallback_key: str) -> dict[str, Any]:
    """The response's JSON object, or ``{fallback_key: <a short account of what came instead>}``."""
    try:
        body = response.json()
    except ValueError:
        if "html" in response.headers.get("content-type", "") or response.text.lstrip()[:1] == "<":
            return {fallback_key: "an HTML page, not this API's JSON"}  # never pasted whole into a warning
        return {fallback_key: " ".join(response.text.split())[:200]}
    return body if isinstance(body, dict) else {fallback_key: str(body)[:200]}


# What each kind of server answers that no other does: kind -> (probe, what to say). A stepline server also
# answers Trackio's /version, so it is asked first.
_SERVER_SIGNS = {
    "mlflow": ("/api/2.0/mlflow/experiments/search?max_results=1", "an MLflow server: use mlflow+{base}"),
    "stepline": ("/api/v1/projects", "a stepline server: use {base}"),
    "trackio": ("/version", "a Trackio server: use trackio+{base}"),
    "traintrack": ("/health", "a TrainTrack server: use traintrack+{base}"),
}


def other_server_hint(response: requests.Response, session: requests.Session, base: str, expected: str,
                      timeout: float) -> str:
    """After a 404 or 405 from ``base``: ``"; <base> looks like <kind>: use <form>"`` when it is another kind of
    server than the ``expected`` one, found by asking what only that kind answers; "" otherwise."""
    if response.status_code not in (404, 405):
        return ""
    here = urlsplit(base)
    for name, (path, kind) in _SERVER_SIGNS.items():
        if name == expected:
            continue
        try:
            response = session.get(f"{here.scheme}://{here.netloc}{path}", timeout=min(timeout, 5.0))
            body = response.json() if response.status_code in (200, 401) else None
        except (requests.RequestException, ValueError):
            continue
        if _answers_as(path, response.status_code, body):
            return f"; {base} looks like {kind.format(base=f'{here.scheme}://{here.netloc}')}"
    return ""


def _answers_as(path: str, status: int, body: Any) -> bool:
    if not isinstance(body, dict):
        return False
    if path.startswith("/api/2.0/mlflow"):
        return status == 200 and "experiments" in body
    if path == "/version":
        return "api_version" in body
    if path == "/api/v1/projects":
        return "projects" in body or (status == 401 and "token" in str(body.get("detail", "")))
    return body == {"status": "ok"}


class RemoteClient:
    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        # Compressing costs the training process CPU; it pays only where the bytes cross a network.
        self.compress = not is_loopback(urlsplit(self.url).hostname or "")
        self.session = requests.Session()
        token = token or os.environ.get("STEPLINE_TOKEN")
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def open_run(self, project: str, run_id: str, meta: dict[str, Any]) -> dict[str, Any]:
        return self._call("PUT", self._run(project, run_id), json={"meta": meta})

    def send_events(self, project: str, run_id: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        return self.send_lines(project, run_id, events.encode_many(records))  # the logbook's own lines

    def send_lines(self, project: str, run_id: str, lines: bytes) -> dict[str, Any]:
        """Send records as the logbook's lines (each ending with a newline), as they are on disk: the server
        parses and checks them, and may store them as received."""
        headers = {"Content-Type": "application/x-ndjson"}
        if self.compress:
            lines = gzip.compress(lines, 1)
            headers["Content-Encoding"] = "gzip"
        return self._call("POST", f"{self._run(project, run_id)}/events", data=lines, headers=headers)

    def upload(self, project: str, run_id: str, relative: str, path: Path) -> dict[str, Any]:
        with open(path, "rb") as handle:  # streamed by requests, never read whole into memory
            return self._call("PUT", f"{self._run(project, run_id)}/files/{quote(relative)}", data=handle,
                              headers={"Content-Type": "application/octet-stream"})

    def upload_media(self, project: str, run_id: str, name: str, path: Path) -> dict[str, Any]:
        """A media file (``12-0.png``), sent before the record that names it."""
        with open(path, "rb") as handle:
            return self._call("PUT", f"{self._run(project, run_id)}/media/{quote(name)}", data=handle,
                              headers={"Content-Type": "application/octet-stream"})

    def _run(self, project: str, run_id: str) -> str:
        return f"{self.url}/api/v1/projects/{quote(project, safe='')}/runs/{quote(run_id, safe='')}"

    def _call(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        response = reachable_response(self.session, method, url, self.url, self.timeout, **kwargs)
        body = json_body(response, "detail")
        if response.status_code in (401, 403):
            given = "was refused" if "Authorization" in self.session.headers else "is needed and none was given"
            why = f" ({body.get('detail')})" if response.status_code == 403 else ""  # 403 says which project
            raise RemoteUnauthorized(
                f"{self.url} answered {response.status_code}: an API token {given}{why}. Pass token= to "
                "stepline.init, or set STEPLINE_TOKEN (stepline sync takes --token); the server's admin makes one "
                "with: stepline server token create --user NAME")
        if response.status_code >= 400:
            hint = other_server_hint(response, self.session, self.url, "stepline", self.timeout)
            raise RemoteRejected(f"{self.url} refused {method} {urlsplit(url).path}: {response.status_code} "
                                 f"{body.get('detail')}{hint}")
        return body
