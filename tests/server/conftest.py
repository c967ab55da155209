from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, what: str, limit: float = 300.0) -> None:
    """Wait until ``url`` answers 2xx: a peer's start-up on a loaded machine can take minutes, so the limit is
    generous, and each probe waits long enough for a busy server to answer."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode} before it answered {url}")
        try:
            if requests.get(url, timeout=10).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not answer {url} in {limit:.0f} s")


def stop_group(process: subprocess.Popen) -> None:
    """Stop a server started with ``start_new_session=True`` and every process it started (workers included)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    try:
        os.killpg(process.pid, signal.SIGKILL)  # workers the leader left behind
    except (ProcessLookupError, PermissionError):
        pass


@pytest.fixture(scope="session")
def mlflow_peer(tmp_path_factory):
    """One real MLflow server for every test that needs one running and no more: it takes ~15 s to start. Such
    tests keep apart by their experiment and run names; a test that stops its server, or needs other flags,
    starts its own (``mlflow_server`` in test_push_mlflow.py)."""
    pytest.importorskip("mlflow")
    from tests.server.mlflow_peer import MLflowServer

    peer = MLflowServer(tmp_path_factory.mktemp("mlflow"))
    yield peer
    peer.stop()


class ServerProcess:
    """`stepline serve` as a user starts it, on a free loopback port; stopped by the test that started it."""

    def __init__(self, logdir, *extra: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([sys.executable, "-m", "stepline.cli.main", "serve", str(logdir),
                                         "--port", str(self.port), *extra],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                requests.get(f"{self.url}/api/v1/projects", timeout=1)
                return
            except requests.ConnectionError:
                if self.process.poll() is not None:
                    raise RuntimeError(self.process.stderr.read()) from None
                time.sleep(0.1)
        raise RuntimeError("stepline serve did not start in 30 s")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


class ThreadedApp:
    """An ASGI app (a peer's protocol double) served on a free loopback port from a thread of the test process."""

    def __init__(self, app, port: int | None = None) -> None:
        import threading

        import uvicorn

        self.app = app
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def server(logdir):
    started = []

    def start(*extra: str, port: int | None = None, root=None) -> ServerProcess:
        started.append(ServerProcess(root or logdir, *extra, port=port))
        return started[-1]

    yield start
    for process in started:
        if process.process.poll() is None:
            process.stop()


BOTH_STORES = ["logbook", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BOTH_STORES)
def store_args(request):
    """What `stepline serve` takes to keep its runs in its folder, or in this test run's PostgreSQL database."""
    return ("--store", request.getfixturevalue("database")) if request.param == "postgresql" else ()


ARTIFACTS = os.path.join(os.path.dirname(__file__), "..", "..", "test-artifacts")


# PostgreSQL: the local server (make test starts it); STEPLINE_TEST_POSTGRES names another admin URL.
POSTGRES_ADMIN = os.environ.get("STEPLINE_TEST_POSTGRES", "postgresql:///postgres")
POSTGRES_TABLES = "projects, runs, series, record_chunks, point_chunks, records, files, file_chunks, users, tokens"


def database_url(name: str) -> str:
    """The admin URL with another database in it (its query string kept)."""
    base, _, database = POSTGRES_ADMIN.rpartition("/")
    return f"{base}/{name}" + "".join(database.partition("?")[1:])


@pytest.fixture(scope="session")
def postgres_url():
    """A database of this test run's own, created here and dropped at the end."""
    import secrets

    import psycopg

    try:
        admin = psycopg.connect(POSTGRES_ADMIN, autocommit=True)
    except psycopg.OperationalError as err:
        if os.environ.get("CI"):
            raise RuntimeError(f"CI must run the PostgreSQL tests, and {POSTGRES_ADMIN} is unreachable ({err}): "
                               "make test installs and starts Debian's postgresql as root") from None
        pytest.skip(f"no PostgreSQL at {POSTGRES_ADMIN}: make test starts one (or set STEPLINE_TEST_POSTGRES)")
    name = f"stepline_test_{os.getpid()}_{secrets.token_hex(4)}"
    admin.execute(f"CREATE DATABASE {name}")
    try:
        yield database_url(name)
    finally:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        admin.close()


@pytest.fixture
def database(postgres_url):
    """This test run's database, empty before and after the test."""
    empty_postgres(postgres_url)
    yield postgres_url
    empty_postgres(postgres_url)


def empty_postgres(url: str) -> None:
    """Every table emptied: each test starts from a database with the schema and no runs."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        if connection.execute("SELECT to_regclass('runs')").fetchone()[0] is not None:
            connection.execute(f"TRUNCATE {POSTGRES_TABLES}")


class Served:
    """The app over one store, and ``land()``: what training wrote into ``logdir`` reaches the store as it
    would reach a team server (a logbook store reads the folder itself; PostgreSQL gets it migrated in)."""

    def __init__(self, kind: str, logdir, postgres_url: str | None) -> None:
        from fastapi.testclient import TestClient

        from stepline.server.app import create_app

        self.kind, self.logdir, self.postgres_url = kind, logdir, postgres_url
        self.stores = []
        self.store = self.new_store()
        self.client = TestClient(create_app(self.store))

    def new_store(self, **options):
        from stepline.server.stores import LogbookStore

        if self.kind == "logbook":
            store = LogbookStore(self.logdir, **options)
        else:
            from stepline.server.stores.postgres import PostgresStore

            store = PostgresStore(self.postgres_url, **options)
        self.stores.append(store)
        return store

    def land(self, store=None) -> None:
        if self.kind == "postgresql":
            from stepline.server.migrate import migrate

            migrate(self.logdir, store or self.store)

    @property
    def location(self) -> str:
        """What `stepline serve` takes to serve this store."""
        return str(self.logdir) if self.kind == "logbook" else self.postgres_url

    def close(self) -> None:
        for store in self.stores:
            store.close()
        if self.postgres_url:
            empty_postgres(self.postgres_url)


@pytest.fixture(params=BOTH_STORES)
def served(request, logdir):
    """The app over each store in turn: the logbook folder, then PostgreSQL."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    if url:
        empty_postgres(url)
    logdir.mkdir(parents=True, exist_ok=True)
    found = Served(request.param, logdir, url)
    yield found
    found.close()
