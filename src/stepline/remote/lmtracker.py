"""Pushing a run to LMTracker (``lmtracker+http://user:password@host:port``), one point per push.

    transport = LMTrackerTransport("http://127.0.0.1:8683/api", "ana:secret")

LMTracker fixes a run's keys and JSON types at its first push and refuses any other, so each set of keys
a stepline run logs becomes an LMTracker run of its own: the first set under the run's name, the next
ones as ``<name>.2``, ``<name>.3``, ... in the order they first appear. Every point carries its ``step``.
LMTracker keeps no params, log lines, files or status, and JSON has no NaN: a point with a NaN or an
infinity is left out (one warning). Pushes are not idempotent: a push whose answer was lost may be stored
twice; after a restart the shipper asks each run how many points it has and sends only the rest.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import requests

from stepline import events
from stepline.errors import ConfigError
from stepline.metric_keys import SYSTEM
from stepline.remote.client import RemoteRejected, WarnOnce, json_body, other_server_hint, reachable_response
from stepline.urls import redacted

SCHEME = "lmtracker+"
FORM = "lmtracker+http://user:password@host:port"


def parse_lmtracker_url(url: str) -> tuple[str, str]:
    """``lmtracker+http://ana:pw@host:8683`` -> ("http://host:8683/api", "ana:pw")."""
    parts = urlsplit(url[len(SCHEME):])
    if parts.scheme not in ("http", "https") or not parts.hostname or not parts.username or parts.password is None:
        raise ConfigError(f"backend {url!r} must look like lmtracker+http://user:password@host:port")
    name, password = unquote(parts.username), unquote(parts.password)
    if ":" in name or ":" in password:
        raise ConfigError(f"backend {redacted(url)!r}: LMTracker splits its Authorization header at every ':', so "
                          "a user name or password holding ':' can never log in there; choose one without")
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    path = parts.path.rstrip("/") or "/api"
    return urlunsplit((parts.scheme, netloc, path, "", "")), f"{name}:{password}"


def transport_maker(url: str, token: str | None) -> Callable[[], LMTrackerTransport]:
    """``lmtracker+http://user:password@host:port``, checked, as a maker of one transport per run."""
    api_url, credentials = parse_lmtracker_url(url)
    return lambda: LMTrackerTransport(api_url, credentials)


class LMTrackerTransport:
    """The shipper's transport for LMTracker: the same calls as :class:`RemoteClient`, in LMTracker's terms."""

    def __init__(self, api_url: str, credentials: str, timeout: float = 30.0) -> None:
        self.url = api_url
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = credentials  # LMTracker's raw name:password
        self._runs: dict[tuple[str, ...], str] = {}  # key set -> LMTracker run name
        self._skip: dict[str, int] = {}  # LMTracker run -> points it had when we began, not to send again
        self._once = WarnOnce(api_url, "; they stay in the local logbook only")

    def open_run(self, project: str, run_id: str, meta: dict[str, Any]) -> dict[str, Any]:
        self._name = str(meta.get("name") or run_id)
        if not hasattr(self, "_project_ready"):
            answer = self._post("create-project", {"name": project}, refuse=False)
            if not answer.get("ok") and "exist" not in str(answer.get("message", "")).lower():
                raise RemoteRejected(f"{self.url} refused create-project {project!r}: {answer.get('message')}")
            self._project_ready = True
        return {"max_seq": {}, "files": {}}

    def send_events(self, project: str, run_id: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        for record in records:
            if record["type"] != events.METRICS:
                self._once(record["type"], f"LMTracker keeps no {record['type']} records")
                continue
            values = {key: value for key, value in record["values"].items() if not key.startswith(SYSTEM)}
            if len(values) < len(record["values"]):  # as a run of its own per key set, it would be noise
                self._once("system", "LMTracker gets no machine figures (system/...)")
                if not values:
                    continue
            if any(isinstance(v, float) and not math.isfinite(v) for v in values.values()):
                self._once("nan", "LMTracker's JSON has no NaN or infinity: points holding one are left out")
                continue
            run = self._run_for(project, tuple(sorted(values)))
            if self._skip.get(run, 0) > 0:
                self._skip[run] -= 1  # LMTracker had this point already when we began
                continue
            metrics = {"step": record["step"], **{k: (int(v) if isinstance(v, bool) else v) for k, v in values.items()}}
            answer = self._post("push-metrics", {"project_name": project, "run_name": run, "metrics": metrics})
            if not answer.get("ok"):
                raise RemoteRejected(f"{self.url} refused a point of {run!r}: {answer.get('message')}")
        return {"max_seq": {records[-1]["type"]: records[-1]["seq"]}}

    def upload(self, project: str, run_id: str, relative: str, path: Any) -> dict[str, Any]:
        self._once("file", "LMTracker keeps no files")
        return {}

    def _run_for(self, project: str, keys: tuple[str, ...]) -> str:
        run = self._runs.get(keys)
        if run is None:
            run = self._name if not self._runs else f"{self._name}.{len(self._runs) + 1}"
            self._runs[keys] = run
            answer = self._post("get-run", {"project_name": project, "run_name": run}, refuse=False)
            self._skip[run] = len(answer.get("metrics") or []) if answer.get("ok") else 0
        return run

    def _post(self, route: str, body: dict[str, Any], refuse: bool = True) -> dict[str, Any]:
        response = reachable_response(self.session, "POST", f"{self.url}/{route}", self.url, self.timeout, json=body)
        answer = json_body(response, "message")
        if response.status_code == 401:
            raise RemoteRejected(f"{self.url} refused the user name and password (401)")
        if refuse and response.status_code >= 400 and not answer.get("ok"):
            hint = other_server_hint(response, self.session, self.url, "stepline", self.timeout)  # which serves its API
            raise RemoteRejected(f"{self.url} refused {route}: {response.status_code} {answer.get('message')}{hint}")
        return answer
