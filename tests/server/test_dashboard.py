"""The dashboard in real Chromium (Debian's, driven by Playwright) against a real `stepline serve`."""

from __future__ import annotations

import math
import os
import re
import shutil

import pytest
import requests

import stepline
from tests.conftest import start_python, wait_until
from tests.server.conftest import ARTIFACTS, BOTH_STORES

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]

if not shutil.which(CHROMIUM) and os.environ.get("CI"):
    raise RuntimeError(f"CI must run the browser tests, and {CHROMIUM} is missing: make test installs it as root")
if not shutil.which(CHROMIUM):
    pytest.skip("Debian's chromium is not installed: make test installs it (apt-get install chromium)",
                allow_module_level=True)


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, request):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.console_errors = errors  # a test that expects an error takes it out
    yield page
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, f"{request.node.name}.png"), full_page=True)
    assert errors == [], errors


@pytest.fixture(params=BOTH_STORES)
def store_server(request, server, logdir, tmp_path):
    """``start()``: `stepline serve` over what training wrote into ``logdir``, as the folder itself or from
    PostgreSQL with the folder migrated in; ``.pushes`` says whether training must push to it to be seen."""

    def start():
        if request.param == "logbook":
            return server()
        from stepline.server.migrate import migrate
        from stepline.server.stores.postgres import PostgresStore

        database = request.getfixturevalue("database")
        store = PostgresStore(database)
        try:
            migrate(logdir, store)
        finally:
            store.close()
        return server("--store", database, root=tmp_path / "unused")

    start.pushes = request.param != "logbook"
    return start


def make_runs(logdir, count=3, points=250):
    runs = []
    for i in range(count):
        run = stepline.init(project="vision", name=f"resnet-{i}", dir=logdir, tags=["cnn" if i else "baseline"],
                            config={"lr": 0.1 * (i + 1), "depth": 18})
        for step in range(points):
            run.log({"train/loss": 1 / (step + 1) + i, "eval/acc": math.nan if step == 7 else step / points},
                    step=step)
        run.info("done")
        run.finish() if i != 1 else run.fail("diverged")
        runs.append(run)
    return runs


def test_empty_logbook_says_what_to_do(server, page, logdir):
    process = server()
    page.goto(process.url)
    assert "examples/plain_loop.py" in page.locator(".empty").inner_text()


def test_runs_table_with_badges_sorting_and_filter(store_server, page, logdir):
    make_runs(logdir)
    process = store_server()
    page.goto(process.url)
    page.click("text=vision")
    page.wait_for_selector("tr[data-run]")
    rows = page.locator("tbody tr[data-run]")
    assert rows.count() == 3
    assert page.locator(".badge.failed").count() == 1 and page.locator(".badge.finished").count() == 2
    page.click("button.sort:has-text('Name')")
    assert [rows.nth(i).locator("td a").inner_text() for i in range(3)] == ["resnet-0", "resnet-1", "resnet-2"]
    page.keyboard.press("/")  # the keyboard reaches the filter
    page.keyboard.type("lr=0.2")
    assert rows.count() == 1 and "resnet-1" in rows.first.inner_text()
    page.fill("[data-filter]", "cnn")
    assert rows.count() == 2
    page.fill("[data-filter]", "")
    page.select_option("select[aria-label=Status]", "failed")
    assert rows.count() == 1


def test_run_page_charts_have_the_right_points(store_server, page, logdir):
    runs = make_runs(logdir, count=1, points=250)
    process = store_server()
    page.goto(f"{process.url}/#/p/vision/r/{runs[0].id}")
    chart = page.locator("figure.chart[data-key='train/loss']")
    chart.wait_for()
    assert chart.get_attribute("data-points") == "250" and chart.get_attribute("data-count") == "250"
    assert "min 0.004 at 249" in chart.inner_text() and "max 1 at 0" in chart.inner_text()
    assert "1 NaN" in page.locator("figure.chart[data-key='eval/acc']").inner_text()
    assert [t.lower() for t in page.locator("section.group h2").all_inner_texts()] == ["train", "eval"]
    assert "lr" in page.locator("table.params").first.inner_text()
    assert "done" in page.locator("table.logs").inner_text()
    page.select_option("select >> nth=0", "epoch")  # the x-axis switch refetches and redraws
    page.locator("figure.chart[data-key='train/loss']").wait_for()
    page.check("text=log scale")


def test_the_machine_s_figures_are_a_group_of_their_own_plotted_against_time(store_server, page, logdir):
    run = stepline.init(project="vision", name="sampled", dir=logdir, system_metrics=True, system_interval=0.2)
    for step in range(20):
        run.log({"train/loss": 1 / (step + 1)}, step=step, epoch=step / 10)
    view = stepline.Logbook(logdir).run(run.id)
    wait_until(lambda: run.flush() and "system/cpu.percent" in view.metric_keys(), 60, "a sample of the machine")
    run.finish()
    process = store_server()
    page.goto(f"{process.url}/#/p/vision/r/{run.id}")
    system = page.locator("figure.chart[data-key='system/cpu.percent']")
    system.wait_for()
    train = page.locator("figure.chart[data-key='train/loss']")
    assert system.get_attribute("data-axis") == "time" and train.get_attribute("data-axis") == "step"
    assert [t.lower() for t in page.locator("section.group h2").all_inner_texts()] == ["train", "system"]
    assert int(system.get_attribute("data-count")) >= 1
    assert re.search(r"max [0-9.]+ at \d{1,2}:\d{2}:\d{2}", system.inner_text())  # at a time of day
    page.select_option("select >> nth=0", "epoch")  # the switch moves training's charts, not the machine's
    page.wait_for_selector("figure.chart[data-key='train/loss'][data-axis='epoch']")
    assert page.locator("figure.chart[data-key='system/cpu.percent']").get_attribute("data-axis") == "time"


def test_a_job_over_two_nodes_shows_a_group_per_machine(store_server, page, logdir):
    from tests.test_nodes import launch

    launch(logdir, "job-d")
    process = store_server()
    [run] = requests.get(f"{process.url}/api/v1/projects/job/runs", timeout=30).json()["runs"]
    page.goto(f"{process.url}/#/p/job/r/{run['id']}")
    page.locator("figure.chart[data-key='system/node.1/memory.process_rss_mb']").wait_for()
    assert [t.lower() for t in page.locator("section.group h2").all_inner_texts()] == [
        "train", "system/node.0", "system/node.1"]
    node1 = page.locator("figure.chart[data-key='system/node.1/memory.process_rss_mb']")
    assert node1.get_attribute("data-axis") == "time" and int(node1.get_attribute("data-count")) >= 1


def test_media_pages_step_through_images_and_show_histograms_tables_text_and_audio(server, page, logdir):
    import numpy as np

    run = stepline.init(project="vision", name="illustrated", dir=logdir)
    for step, colour in enumerate(([255, 0, 0], [0, 255, 0], [0, 0, 255])):
        square = np.zeros((8, 8, 3), dtype=np.uint8) + np.array(colour, dtype=np.uint8)
        run.log({"samples": [stepline.Image(square, caption=f"square {step}"), stepline.Image(255 - square)],
                 "weights": stepline.Histogram(np.random.default_rng(step).normal(step, 1, 500)),
                 "loss": 1.0 / (step + 1)}, step=step)
    run.log({"preds": stepline.Table(rows=[[1, "cat", 0.9], [2, "dog", 0.4], [10, "cow", 0.7]],
                                     columns=["id", "label", "score"]),
             "note": stepline.Text("the end"), "tone": stepline.Audio(np.zeros(800), sample_rate=8000)}, step=3)
    run.finish()
    process = server()
    page.goto(f"{process.url}/#/p/vision/r/{run.id}")
    images = page.locator("figure.media-view[data-key='samples']")
    images.locator("img").first.wait_for()
    assert images.get_attribute("data-step") == "2" and images.locator("img").count() == 2
    last = images.locator("img").first.get_attribute("data-file")
    assert "square 2" in images.inner_text()
    images.locator("input[type=range]").fill("0")  # the slider moves to the first step: another image
    page.wait_for_selector("figure.media-view[data-key='samples'][data-step='0']")
    assert images.locator("img").first.get_attribute("data-file") != last and "square 0" in images.inner_text()
    width = page.evaluate("document.querySelector(\"figure.media-view[data-key='samples'] img\").naturalWidth")
    assert width == 8  # the PNG decoded in the browser
    assert page.locator("figure.media-view[data-key='weights'] canvas.heatmap").get_attribute("data-steps") == "3"
    table = page.locator("figure.media-view[data-key='preds']")
    table.locator("td").first.wait_for()
    table.locator("button.sort:has-text('id')").click()
    table.locator("button.sort:has-text('id')").click()  # twice: descending, numerically
    assert table.locator("tbody tr").first.inner_text().startswith("10")
    table.locator("input[type=search]").fill("do")
    assert table.locator("tbody tr").count() == 1 and "dog" in table.locator("tbody").inner_text()
    assert page.locator("figure.media-view[data-key='note'] pre").inner_text() == "the end"
    assert page.locator("figure.media-view[data-key='tone'] audio").count() == 1
    file = page.evaluate(f"fetch('/api/v1/projects/vision/runs/{run.id}/media/' + "
                         "document.querySelector(\"figure.media-view[data-key='tone'] audio\").dataset.file"
                         ".split('/').pop(), {headers: {Range: 'bytes=0-3'}})"
                         ".then(async (r) => [r.status, await r.text()])")
    assert file == [206, "RIFF"]  # range requests are served
    import requests

    base = f"{process.url}/api/v1/projects/vision/runs/{run.id}/media"
    assert requests.get(f"{base}/..%2Fmeta.json", timeout=10).status_code in (400, 404)  # never a path out
    assert requests.get(f"{base}/999-0.png", timeout=10).status_code == 404
    assert [r["step"] for r in requests.get(base, params={"key": "samples"}, timeout=10).json()["media"]] == [0, 1, 2]


def test_a_live_run_s_new_media_appear_without_a_reload(store_server, page, logdir, tmp_path):
    process = store_server()
    backend = process.url if store_server.pushes else None  # a team server: training pushes to it
    stop = tmp_path / "stop"
    writer = start_python(f"""
        import os, time, numpy as np, stepline
        run = stepline.init(project="live", name="drawing", dir={str(logdir)!r}, backend={backend!r})
        print(run.id, flush=True)
        step, deadline = 0, time.time() + 120
        while not os.path.exists({str(stop)!r}) and time.time() < deadline:
            run.log({{"samples": stepline.Image(np.full((4, 4), step % 256, dtype=np.uint8)), "loss": 1.0}},
                    step=step)
            step += 1
            time.sleep(0.2)
        run.finish()
    """)
    try:
        run_id = writer.stdout.readline().strip()
        import requests

        wait_until(lambda: requests.get(f"{process.url}/api/v1/projects/live/runs/{run_id}", timeout=10).ok, 60,
                   "the run on the server")  # a pushed run exists there once its shipper opened it
        page.goto(f"{process.url}/?poll_ms=200#/p/live/r/{run_id}")
        view = page.locator("figure.media-view[data-key='samples'][data-step]")  # its images fetched and shown
        view.wait_for(timeout=60_000)
        first = int(view.get_attribute("data-step"))
        shown = "document.querySelector(\"figure.media-view[data-key='samples']\").dataset.step"
        page.wait_for_function(f"() => Number({shown}) > {first + 2}", timeout=60_000)  # while the page stays open
    finally:
        stop.write_text("")
        writer.wait(timeout=60)
    page.locator(".run-head .badge.finished").wait_for(timeout=60_000)  # and the page stops polling:
    page.wait_for_load_state("networkidle")  # its last answers are in before the server's store goes away


def test_a_big_run_is_downsampled_for_the_browser(store_server, page, logdir):
    run = stepline.init(project="big", dir=logdir)
    for step in range(20_000):
        run.log({"v": float(step % 100)}, step=step)
    run.finish()
    process = store_server()
    page.goto(f"{process.url}/#/p/big/r/{run.id}")
    chart = page.locator("figure.chart[data-key='v']")
    chart.wait_for()
    assert chart.get_attribute("data-count") == "20000" and int(chart.get_attribute("data-points")) <= 1000


def test_live_update_while_a_process_logs(store_server, page, logdir):
    process = store_server()
    backend = process.url if store_server.pushes else None  # a team server: training pushes to it
    writer = start_python(f"""
        import time, stepline
        run = stepline.init(project="live", name="growing", dir={str(logdir)!r}, backend={backend!r})
        print(run.id, flush=True)
        for step in range(600):
            run.log({{"loss": 1 / (step + 1)}}, step=step)
            time.sleep(0.02)
        run.finish()
    """)
    try:
        run_id = writer.stdout.readline().strip()
        page.goto(f"{process.url}/#/p/live/r/{run_id}")
        chart = page.locator("figure.chart[data-key='loss']")
        chart.wait_for()
        first = int(chart.get_attribute("data-count"))
        page.wait_for_function(
            f"() => Number(document.querySelector(\"figure.chart[data-key='loss']\").dataset.count) > {first + 50}",
            timeout=20_000)
        page.goto(f"{process.url}/#/p/live")
        steps = page.locator("td[data-steps]")
        steps.wait_for()
        before = int(steps.get_attribute("data-steps"))
        page.wait_for_function(f"() => Number(document.querySelector('td[data-steps]').dataset.steps) > {before}",
                               timeout=20_000)
    finally:
        writer.kill()
        writer.wait()


def test_compare_view_overlays_runs_and_diffs_params(store_server, page, logdir):
    make_runs(logdir)
    process = store_server()
    page.goto(f"{process.url}/#/p/vision")
    page.wait_for_selector("tr[data-run]")
    page.locator("tbody input[type=checkbox]").nth(0).check()
    page.locator("tbody input[type=checkbox]").nth(2).check()
    page.click("text=Compare selected")
    chart = page.locator("figure.chart[data-key='train/loss']")
    chart.wait_for()
    assert chart.get_attribute("data-runs") == "2"
    diff = page.locator("table.diff")
    assert "lr" in diff.inner_text() and "depth" not in diff.inner_text()


def test_compare_shows_a_media_key_of_each_run_side_by_side_at_one_step(server, page, logdir):
    import numpy as np

    ids = []
    for name, colour in (("red", [255, 0, 0]), ("blue", [0, 0, 255])):
        run = stepline.init(project="vision", name=name, dir=logdir)
        for step in range(2):
            square = np.zeros((4, 4, 3), dtype=np.uint8) + np.array(colour, dtype=np.uint8) // (step + 1)
            run.log({"samples": stepline.Image(square, caption=f"{name} {step}"),
                     "weights": stepline.Histogram(np.arange(10.0) * (step + 1))}, step=step)
        run.finish()
        ids.append(run.id)
    process = server()
    page.goto(f"{process.url}/#/p/vision/compare?runs={','.join(ids)}")
    compared = page.locator("figure.media-view[data-key='samples'][data-compare]")
    compared.locator("img").nth(1).wait_for()
    assert compared.get_attribute("data-step") == "1"
    assert [compared.locator(f".media-column[data-run='{i}']").inner_text().split("\n")[-1] for i in ids] == [
        "red 1", "blue 1"]
    compared.locator("input[type=range]").fill("0")
    page.wait_for_selector("figure.media-view[data-key='samples'][data-compare][data-step='0']")
    assert "red 0" in compared.inner_text() and "blue 0" in compared.inner_text()
    assert page.locator(".media-compare-row[data-key='weights'] canvas.heatmap").count() == 2


def test_delete_asks_first(server, page, logdir):
    runs = make_runs(logdir, count=2)
    process = server()
    page.goto(f"{process.url}/#/p/vision/r/{runs[0].id}")
    page.wait_for_selector("figure.chart")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("text=Delete run")
    assert runs[0].path.exists()
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("text=Delete run")
    page.wait_for_selector("tr[data-run]")
    assert not runs[0].path.exists() and page.locator("tr[data-run]").count() == 1


def test_dark_mode(server, page, logdir):
    make_runs(logdir, count=1)
    process = server()
    page.emulate_media(color_scheme="dark")
    page.goto(f"{process.url}/#/p/vision")
    page.wait_for_selector("tr[data-run]")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(15, 23, 42)"
    page.keyboard.press("t")  # the toggle overrides the system's choice
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(255, 255, 255)"


def test_a_server_that_needs_a_token_asks_the_browser_for_one(server, page, logdir):
    import subprocess
    import sys

    make_runs(logdir, count=1)
    admin = [sys.executable, "-m", "stepline.cli.main", "server"]
    subprocess.run([*admin, "user", "add", "ana", "--dir", str(logdir)], check=True, capture_output=True)
    token = subprocess.run([*admin, "token", "create", "--user", "ana", "--dir", str(logdir)], check=True,
                           capture_output=True, text=True).stdout.strip()
    process = server("--require-token")
    page.once("dialog", lambda dialog: dialog.accept(token))
    page.goto(f"{process.url}/#/p/vision")
    page.wait_for_selector("tr[data-run]")
    assert page.evaluate("localStorage.getItem('stepline-token')") == token
    page.console_errors[:] = [e for e in page.console_errors if "401" not in e]  # the first, refused call


def live_canvases(cdp) -> int:
    """Canvases alive in the page's heap after a collection, detached ones included: one per uPlot chart that
    was not destroyed (uPlot keeps each chart in a global set until destroy())."""
    cdp.send("HeapProfiler.collectGarbage")
    group = {"objectGroup": "live-canvases"}  # released below, so that counting holds nothing alive
    prototype = cdp.send("Runtime.evaluate", {"expression": "HTMLCanvasElement.prototype", **group})
    found = cdp.send("Runtime.queryObjects", {"prototypeObjectId": prototype["result"]["objectId"], **group})
    count = cdp.send("Runtime.callFunctionOn", {"objectId": found["objects"]["objectId"], "returnByValue": True,
                                                "functionDeclaration": "function () { return this.length; }"})
    cdp.send("Runtime.releaseObjectGroup", group)
    return count["result"]["value"]


def heap_mb(cdp) -> float:
    cdp.send("HeapProfiler.collectGarbage")
    return cdp.send("Runtime.getHeapUsage")["usedSize"] / 2**20


def test_a_live_page_updates_its_charts_in_place_and_stops_polling_when_the_run_ends(server, page, logdir, tmp_path):
    stop = tmp_path / "stop"
    writer = start_python(f"""
        import os, time, stepline
        run = stepline.init(project="live", name="long", dir={str(logdir)!r})
        print(run.id, flush=True)
        step, deadline = 0, time.time() + 300
        while not os.path.exists({str(stop)!r}) and time.time() < deadline:
            run.log({{"train/loss": 1 / (step + 1), "train/acc": step % 7, "eval/loss": 2 / (step + 1)}}, step=step)
            step += 1
            time.sleep(0.01)
        run.finish()
        print("finished", flush=True)
    """)
    try:
        run_id = writer.stdout.readline().strip()
        process = server()
        page.add_init_script(f"""window.polls = 0; const fetched = window.fetch;
            window.fetch = (url, ...rest) => {{ if (String(url).endsWith("/runs/{run_id}")) window.polls++;
                                               return fetched(url, ...rest); }};""")
        polls = lambda: page.evaluate("window.polls")  # noqa: E731
        page.goto(f"{process.url}/?poll_ms=20#/p/live/r/{run_id}")
        page.locator("figure.chart[data-key='train/loss']").wait_for()
        cdp = page.context.new_cdp_session(page)
        page.wait_for_function("() => document.querySelectorAll('figure.chart').length === 3")
        page.wait_for_function("() => window.polls >= 30", timeout=120_000)
        first_count = int(page.locator("figure.chart[data-key='train/loss']").get_attribute("data-count"))
        canvases, heap = live_canvases(cdp), heap_mb(cdp)
        page.wait_for_function("() => window.polls >= 330", timeout=300_000)
        assert int(page.locator("figure.chart[data-key='train/loss']").get_attribute("data-count")) > first_count
        assert live_canvases(cdp) == canvases == 3  # no chart made and left behind on a poll
        assert page.locator(".uplot").count() == 3
        grown = heap_mb(cdp) - heap
        print(f"JS heap after 30 polls {heap:.1f} MB, grown {grown:+.1f} MB over 300 more polls; "
              f"{canvases} chart canvases throughout")
        assert grown < 8  # the points themselves grow it a little; a chart left behind per poll is far more
        stop.touch()
        assert "finished" in writer.stdout.readline()
        page.locator(".run-head .badge.finished").wait_for(timeout=60_000)
        ended_at = polls()
        page.wait_for_timeout(1000)  # fifty poll intervals
        assert polls() == ended_at  # an ended run is not polled
        page.goto(f"{process.url}/?poll_ms=20#/p/live")  # moving on destroys the run page's charts
        page.wait_for_selector("tr[data-run]")
        assert live_canvases(cdp) == 0 and page.locator(".uplot").count() == 0
    finally:
        stop.touch()
        writer.kill()
        writer.wait()
