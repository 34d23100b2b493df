"""The dashboard in a real browser (headless Chromium through Selenium) against a real
uvicorn server on a loopback port, plus the HTTP-level safety checks (read-only, CSRF,
password) that a browser cannot forge."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import RunningWorker
from dashboard_support import LiveServer

from taskito import Queue

pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx")
from taskito.dashboard import create_app  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
needs_browser = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="headless browser tests need Chromium and its driver: apt-get install chromium chromium-driver",
)
# Where to keep a screenshot of the overview (the README shows docs/dashboard.png).
SCREENSHOT = os.environ.get("DASHBOARD_SCREENSHOT")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if CHROMIUM is None or DRIVER is None:
        pytest.skip(
            "headless browser tests need Chromium and its driver: apt-get install chromium chromium-driver"
        )
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def _wait(driver: object, check: object, timeout: float = 30, what: str = "the page") -> object:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(check, message=f"waiting for {what}")


def _by_css(driver: object, css: str) -> object:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css)  # type: ignore[attr-defined]


def _all_css(driver: object, css: str) -> list:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, css)  # type: ignore[attr-defined]


def _cell(driver: object, queue: str, status: str) -> str:
    """A count on the overview; the page redraws its rows every poll, so a cell found
    just before a redraw is read again."""
    from selenium.common.exceptions import StaleElementReferenceException

    for _ in range(20):
        try:
            return _by_css(driver, f'#queues tbody tr[data-queue="{queue}"] td[data-status="{status}"]').text
        except StaleElementReferenceException:
            continue
    raise AssertionError(f"the {queue}/{status} cell kept changing")


def _click_and_confirm(driver: object, css: str) -> None:
    _by_css(driver, css).click()
    _wait(driver, lambda d: _all_css(d, "#confirm"), what="the confirm page")
    _by_css(driver, "#confirm").click()


@pytest.fixture
def app_queue(queue: Queue, tmp_path: Path) -> Queue:
    flag = tmp_path / "fixed"

    @queue.task(name="shop.add")
    def add(a: int, b: int) -> int:
        time.sleep(0.05)
        return a + b

    @queue.task(name="shop.flaky", max_retries=1, retry_backoff=0.01)
    def flaky(order: int) -> str:
        if not flag.exists():
            raise ValueError(f"order {order} is not ready")
        return f"order {order} shipped"

    @queue.task(name="shop.evil")
    def evil() -> str:
        return "<script>alert(1)</script>"

    queue.fixed = flag  # type: ignore[attr-defined]
    return queue


@needs_browser
def test_overview_counts_update_live(browser: object, app_queue: Queue) -> None:
    app_queue.enqueue_many("shop.add", [(i, i) for i in range(8)])
    app_queue.enqueue("shop.add", (1, 2), queue="reports")
    with LiveServer(create_app(app_queue)) as server:
        browser.get(server.url + "/")  # type: ignore[attr-defined]
        assert _cell(browser, "default", "pending") == "8"
        assert _cell(browser, "default", "completed") == "0"
        assert "No workers." in _by_css(browser, "#workers").text
        browser.execute_script("window.notReloaded = true;")  # type: ignore[attr-defined]
        worker = RunningWorker(app_queue).start()
        try:
            _wait(browser, lambda d: _cell(d, "default", "completed") == "8", what="the counts to change")
            assert _cell(browser, "default", "pending") == "0"
            assert _cell(browser, "reports", "completed") == "1"
            _wait(browser, lambda d: "active" in _by_css(d, "#workers").text, what="the worker row")
            _wait(browser, lambda d: _by_css(d, "#throughput-total").text == "9", what="the throughput")
            assert len(_all_css(browser, "#throughput rect")) == 30
            assert browser.execute_script("return window.notReloaded === true;")  # type: ignore[attr-defined]
            if SCREENSHOT:
                browser.save_screenshot(SCREENSHOT)  # type: ignore[attr-defined]
        finally:
            worker.stop()


@needs_browser
def test_failed_job_shows_every_attempt_and_traceback(browser: object, app_queue: Queue) -> None:
    job = app_queue.enqueue("shop.flaky", (7,))
    worker = RunningWorker(app_queue).start()
    try:
        deadline = time.monotonic() + 30
        while job.status != "dead":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        worker.stop()
    with LiveServer(create_app(app_queue, unsafe_decode_pickles=True)) as server:
        browser.get(server.url + "/jobs")  # type: ignore[attr-defined]
        from selenium.webdriver.support.ui import Select

        Select(_by_css(browser, "#filter-status")).select_by_value("dead")
        _by_css(browser, "#filter-apply").click()
        _wait(browser, lambda d: "status=dead" in d.current_url, what="the filtered list")
        links = _all_css(browser, "a.job-link")
        assert [a.text for a in links] == [job.id]
        links[0].click()
        _wait(browser, lambda d: _all_css(d, "#job-status"), what="the job page")
        assert _by_css(browser, "#job-status").text == "dead"
        assert _by_css(browser, "#job-args").text == "(7,)"
        attempts = _all_css(browser, ".attempt")
        assert len(attempts) == 2
        for attempt in attempts:
            text = attempt.text
            assert "ValueError: order 7 is not ready" in text
            assert "Traceback (most recent call last)" in text
            assert 'raise ValueError(f"order {order} is not ready")' in text
        assert _by_css(browser, "#job-worker").text.startswith(app_queue.workers()[0]["worker_id"])


@needs_browser
def test_retry_a_dead_letter_and_watch_it_run(browser: object, app_queue: Queue) -> None:
    job = app_queue.enqueue("shop.flaky", (9,))
    app_queue.run_worker(run_once=True)
    while job.status != "dead":
        app_queue.run_worker(run_once=True)
        time.sleep(0.02)
    app_queue.fixed.write_text("yes")  # type: ignore[attr-defined]
    worker = RunningWorker(app_queue).start()
    try:
        with LiveServer(create_app(app_queue, unsafe_decode_pickles=True)) as server:
            browser.get(server.url + "/dead")  # type: ignore[attr-defined]
            rows = _all_css(browser, "#dead tbody tr[data-dead-id]")
            assert len(rows) == 1 and job.id in rows[0].text
            _click_and_confirm(browser, "a.retry-dead")
            _wait(
                browser,
                lambda d: "/jobs/" in d.current_url and _all_css(d, "#job-status"),
                what="the new job",
            )
            assert "enqueued again as job" in _by_css(browser, "#flash").text
            new_id = browser.current_url.rsplit("/", 1)[1]  # type: ignore[attr-defined]
            assert new_id != job.id

            def shipped(d: object) -> bool:
                d.refresh()  # type: ignore[attr-defined]
                return _by_css(d, "#job-status").text == "complete"

            _wait(browser, shipped, what="the retried job to complete")
            assert _by_css(browser, "#job-result").text == "'order 9 shipped'"
            browser.get(server.url + "/dead")  # type: ignore[attr-defined]
            assert "No dead letters." in _by_css(browser, "#dead").text
    finally:
        worker.stop()


@needs_browser
def test_pause_and_resume_a_queue(browser: object, app_queue: Queue) -> None:
    app_queue.enqueue("shop.add", (0, 0))
    worker = RunningWorker(app_queue).start()
    try:
        with LiveServer(create_app(app_queue)) as server:
            browser.get(server.url + "/")  # type: ignore[attr-defined]
            _wait(browser, lambda d: _cell(d, "default", "completed") == "1", what="the first job")
            _click_and_confirm(browser, 'tr[data-queue="default"] a.button')
            _wait(browser, lambda d: _all_css(d, "#queues .badge.paused"), what="the paused mark")
            assert "Paused queue default" in _by_css(browser, "#flash").text
            assert app_queue.paused_queues() == ["default"]
            held = app_queue.enqueue("shop.add", (2, 3))
            time.sleep(1.5)
            assert held.status == "pending"
            assert _cell(browser, "default", "pending") == "1"
            _click_and_confirm(browser, 'tr[data-queue="default"] a.button')
            _wait(browser, lambda d: "Resumed queue default" in _by_css(d, "#flash").text, what="the resume")
            assert held.result(timeout=30) == 5
            _wait(browser, lambda d: _cell(d, "default", "completed") == "2", what="the live count")
            assert not _all_css(browser, "#queues .badge.paused")
    finally:
        worker.stop()


@needs_browser
def test_cancel_a_pending_job_and_purge_dead_letters(browser: object, app_queue: Queue) -> None:
    later = app_queue.enqueue("shop.add", (1, 1), delay=3600)
    doomed = app_queue.enqueue("shop.flaky", (3,), max_retries=0)
    app_queue.run_worker(run_once=True)
    assert doomed.status == "dead"
    with LiveServer(create_app(app_queue)) as server:
        browser.get(f"{server.url}/jobs/{later.id}")  # type: ignore[attr-defined]
        _click_and_confirm(browser, "#cancel-job")
        _wait(browser, lambda d: _by_css(d, "#job-status").text == "cancelled", what="the cancel")
        assert later.status == "cancelled"
        assert not _all_css(browser, "#cancel-job")
        browser.get(server.url + "/dead")  # type: ignore[attr-defined]
        _click_and_confirm(browser, "#purge-dead")
        _wait(browser, lambda d: "Purged 1 dead letter(s)." in _by_css(d, "#flash").text, what="the purge")
        assert app_queue.dead_letters() == []


@needs_browser
def test_read_only_hides_actions_and_refuses_them(browser: object, app_queue: Queue) -> None:
    later = app_queue.enqueue("shop.add", (1, 1), delay=3600)
    app_queue.enqueue("shop.flaky", (4,), max_retries=0)
    app_queue.run_worker(run_once=True)
    with LiveServer(create_app(app_queue, read_only=True)) as server:
        browser.get(server.url + "/")  # type: ignore[attr-defined]
        assert _by_css(browser, "#read-only-badge").text == "read-only"
        assert _all_css(browser, "#queues a.button") == []
        browser.get(f"{server.url}/jobs/{later.id}")  # type: ignore[attr-defined]
        assert _all_css(browser, "#cancel-job") == []
        browser.get(server.url + "/dead")  # type: ignore[attr-defined]
        assert _all_css(browser, "a.retry-dead") == [] and _all_css(browser, "#purge-dead") == []
        # The POST itself is refused too, even with the session's token.
        with httpx.Client(base_url=server.url) as client:
            page = client.get("/")
            assert page.status_code == 200
            token = client.cookies.get("taskito_dashboard")
            assert token
            for action, data in [
                ("pause", {"queue": "default"}),
                ("cancel", {"job_id": later.id}),
                ("purge", {}),
            ]:
                assert client.get(f"/actions/{action}").status_code == 403
                assert client.post(f"/actions/{action}", data={**data, "csrf_token": "x"}).status_code == 403
    assert app_queue.paused_queues() == []
    assert later.status == "pending"
    assert len(app_queue.dead_letters()) == 1


def _token(client: object, path: str) -> str:
    page = client.get(path)  # type: ignore[attr-defined]
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def test_posts_without_the_csrf_token_are_refused(app_queue: Queue) -> None:
    pytest.importorskip("uvicorn")
    with LiveServer(create_app(app_queue)) as server, httpx.Client(base_url=server.url) as client:
        assert client.post("/actions/pause", data={"queue": "default"}).status_code == 403
        token = _token(client, "/actions/pause?queue=default")
        assert (
            client.post("/actions/pause", data={"queue": "default", "csrf_token": "wrong"}).status_code == 403
        )
        # Another visitor (no session cookie) cannot reuse the token.
        with httpx.Client(base_url=server.url) as other:
            assert (
                other.post("/actions/pause", data={"queue": "default", "csrf_token": token}).status_code
                == 403
            )
        assert app_queue.paused_queues() == []
        ok = client.post("/actions/pause", data={"queue": "default", "csrf_token": token})
        assert ok.status_code == 303
        assert app_queue.paused_queues() == ["default"]


@needs_browser
def test_password_is_required_when_set(browser: object, app_queue: Queue) -> None:
    app = create_app(app_queue, password="s3cret-pass")
    with LiveServer(app) as server:
        browser.delete_all_cookies()  # type: ignore[attr-defined]
        browser.get(server.url + "/jobs")  # type: ignore[attr-defined]
        _wait(browser, lambda d: "/login" in d.current_url, what="the login page")
        assert "Queues" not in browser.page_source  # type: ignore[attr-defined]
        _by_css(browser, "#password").send_keys("wrong")
        _by_css(browser, "#login").click()
        _wait(browser, lambda d: _all_css(d, "#login-error"), what="the refusal")
        _by_css(browser, "#password").send_keys("s3cret-pass")
        _by_css(browser, "#login").click()
        _wait(
            browser, lambda d: d.current_url.endswith("/jobs") and _all_css(d, "#jobs"), what="the jobs page"
        )
        browser.delete_all_cookies()  # type: ignore[attr-defined]
        # Scripts and scrapers: 401 without credentials, HTTP Basic with the password works.
        assert httpx.get(server.url + "/api/overview").status_code == 401
        assert httpx.get(server.url + "/metrics").status_code == 401
        assert httpx.get(server.url + "/api/overview", auth=("any", "nope")).status_code == 401
        assert httpx.get(server.url + "/api/overview", auth=("any", "s3cret-pass")).status_code == 200
        page = httpx.get(server.url + "/", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/login")


@needs_browser
def test_task_output_is_shown_escaped(browser: object, app_queue: Queue) -> None:
    job = app_queue.enqueue("shop.evil")
    meta = app_queue.enqueue(
        "shop.add", ("<b>x</b>", "<img src=x onerror=alert(2)>"), metadata={"k": "<i>v</i>"}
    )
    app_queue.run_worker(run_once=True)
    assert job.result(timeout=5) == "<script>alert(1)</script>"
    with LiveServer(create_app(app_queue, unsafe_decode_pickles=True)) as server:
        browser.get(f"{server.url}/jobs/{job.id}")  # type: ignore[attr-defined]
        assert _by_css(browser, "#job-result").text == "'<script>alert(1)</script>'"
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in browser.page_source  # type: ignore[attr-defined]
        assert _all_css(browser, "#job-result script") == []
        browser.get(f"{server.url}/jobs/{meta.id}")  # type: ignore[attr-defined]
        assert _by_css(browser, "#job-args").text == "('<b>x</b>', '<img src=x onerror=alert(2)>')"
        assert _all_css(browser, "#job-args img, #job-args b, #job-metadata i") == []
        from selenium.common.exceptions import NoAlertPresentException

        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert.text  # type: ignore[attr-defined]  # noqa: B018


def test_cli_serves_the_dashboard(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn")
    from cli_support import start_cli, wait_for, write_app
    from dashboard_support import free_port

    app = write_app(tmp_path, str(tmp_path / "q.db"))
    Queue(db_path=str(tmp_path / "q.db")).enqueue("add", (1, 2))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_cli("dashboard", "--app", app, "--port", str(port), "--read-only", cwd=tmp_path)
    try:

        def page() -> object:
            assert proc.poll() is None, proc.communicate()
            try:
                return httpx.get(url + "/", timeout=2)
            except httpx.HTTPError:
                return None

        r = wait_for(page, timeout=60, what="the dashboard")
        assert r.status_code == 200  # type: ignore[attr-defined]
        assert 'id="read-only-badge"' in r.text  # type: ignore[attr-defined]
        assert 'data-queue="default"' in r.text  # type: ignore[attr-defined]
        assert httpx.get(url + "/actions/pause?queue=default").status_code == 403
        # Bound to loopback, it answers only requests addressed to loopback names.
        assert httpx.get(url + "/", headers={"Host": "attacker.example"}).status_code == 400
        assert httpx.get(f"http://localhost:{port}/", timeout=5).status_code == 200
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert f"Dashboard (read-only) on http://127.0.0.1:{port}/" in out

    port = free_port()
    proc = start_cli(
        "dashboard", "--app", app, "--port", str(port), cwd=tmp_path, env={"TASKITO_DASHBOARD_PASSWORD": "pw"}
    )
    try:
        wait_for(lambda: proc.poll() is None and _reachable(f"http://127.0.0.1:{port}/login"), timeout=60)
        r = httpx.get(f"http://127.0.0.1:{port}/", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
        assert httpx.get(f"http://127.0.0.1:{port}/api/overview", auth=("u", "pw")).status_code == 200
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def _reachable(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
