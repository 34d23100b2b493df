"""Takes docs/dashboard.png: a real worker runs jobs on three queues for about 40 s (one
queue paused, some jobs failing), the dashboard serves them, headless Chromium shoots the
overview. Needs taskito[dashboard], selenium, chromium and chromium-driver.

    python docs/screenshot.py
"""

from __future__ import annotations

import random
import sys
import tempfile
import threading
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "python")]

from dashboard_support import LiveServer  # noqa: E402

from taskito import Queue  # noqa: E402
from taskito.dashboard import create_app  # noqa: E402

queue = Queue(db_path=str(Path(tempfile.mkdtemp()) / "shop.db"), workers=4, scheduler_poll_interval_ms=20)


@queue.task(name="shop.send_receipt", queue="emails")
def send_receipt(order: int) -> str:
    time.sleep(random.uniform(0.01, 0.05))
    return f"receipt {order} sent"


@queue.task(name="shop.charge_card", queue="payments", max_retries=1, retry_backoff=0.1)
def charge_card(order: int) -> str:
    time.sleep(random.uniform(0.02, 0.08))
    if order % 17 == 0:
        raise RuntimeError(f"card declined for order {order}")
    return "ok"


@queue.task(name="shop.build_report", queue="reports")
def build_report(day: int) -> int:
    return day


def main() -> None:
    worker = threading.Thread(target=queue.run_worker, daemon=True)
    worker.start()
    queue.pause("reports")
    queue.enqueue_many("shop.build_report", [(d,) for d in range(12)], queue="reports")
    order = 0
    for second in range(40):
        burst = 20 + int(15 * abs(((second % 14) - 7) / 7))
        for _ in range(burst):
            order += 1
            send_receipt.delay(order)
            charge_card.delay(order)
        time.sleep(1)
    queue.enqueue_many("shop.send_receipt", [(i,) for i in range(40)], delay=600)
    with LiveServer(create_app(queue)) as server:
        options = webdriver.ChromeOptions()
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1060"):
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            driver.get(server.url + "/")
            time.sleep(2)
            driver.save_screenshot(str(ROOT / "docs" / "dashboard.png"))
        finally:
            driver.quit()
    queue.shutdown()
    worker.join(30)


if __name__ == "__main__":
    main()
