"""A regular install, not the editable one every other test runs from: the wheel, in a fresh venv, serves.

The first wheel held no `server/static/`, so `stepline serve` from `pip install 'stepline[server]'` died at
start while every test passed.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import zipfile

import pytest
import requests

from tests.conftest import REPO
from tests.server.conftest import free_port

pytestmark = pytest.mark.slow


def test_the_wheel_installed_in_a_fresh_venv_serves_the_dashboard(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp_path / "dist"),
                    str(REPO)], check=True, capture_output=True, timeout=600)
    [wheel] = (tmp_path / "dist").glob("stepline-*.whl")
    static = {name for name in zipfile.ZipFile(wheel).namelist() if "/static/" in name}
    source = REPO / "src/stepline/server/static"
    shipped = {str(p.relative_to(REPO / "src")) for p in source.rglob("*") if p.is_file()}
    assert static == shipped

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "--quiet", f"{wheel}[server]"], check=True,
                   capture_output=True, timeout=900)
    where = subprocess.run([str(venv / "bin/python"), "-c", "import stepline; print(stepline.__file__)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert where.startswith(str(venv)), where  # the installed copy, not the checkout
    # the native metrics segment is in the wheel, and the installed copy uses it
    assert any(re.fullmatch(r"stepline/metrics_segment\..*\.so", name) for name in zipfile.ZipFile(wheel).namelist())
    subprocess.run([str(venv / "bin/python"), "-c", "from stepline.metrics_batch import NATIVE; assert NATIVE"],
                   check=True, timeout=120, cwd=tmp_path)

    logdir = tmp_path / "logbook"
    subprocess.run([str(venv / "bin/python"), "-c", "import stepline; r = stepline.init(project='w', name='one', "
                    f"dir={str(logdir)!r}); r.log({{'loss': 0.5}}, step=1); r.finish()"], check=True, timeout=120)
    port = free_port()
    process = subprocess.Popen([str(venv / "bin/stepline"), "serve", str(logdir), "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        url = f"http://127.0.0.1:{port}"
        page = _wait_for_page(url, process)
        assert "stepline" in page
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
        assert len(assets) >= 4
        for asset in assets:
            assert requests.get(url + asset, timeout=10).status_code == 200, asset
        runs = requests.get(f"{url}/api/v1/projects/w/runs", timeout=10).json()
        assert [r["name"] for r in runs["runs"]] == ["one"]
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_for_page(url: str, process: subprocess.Popen) -> str:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            return requests.get(url + "/", timeout=5).text
        except requests.ConnectionError:
            if process.poll() is not None:
                raise AssertionError(f"stepline serve exited: {process.stderr.read()}") from None
            time.sleep(0.2)
    raise AssertionError("stepline serve did not answer in 120 s")
