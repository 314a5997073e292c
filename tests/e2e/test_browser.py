"""A browser on the example project: the dashboard and the admin move live.

Runs Debian's ``chromium`` (``apt-get install chromium``; ``.ci/run``
installs it when it can) through Playwright, against ``manage.py faust
worker`` serving the example on the embedded default (memory:// broker and
tables). Skipped, saying why, when either is missing. With
``DJANGO_FAUST_SCREENSHOTS=1`` it also writes the screenshots of
``docs/_static/`` that docs/admin.rst shows.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.test_manage_py import EXAMPLE, ROOT, user_env

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "docs" / "_static"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"no browser: {CHROMIUM} is missing (apt-get install chromium)",
    ),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def site(tmp_path):
    """The example served by its worker; yields the base URL."""
    port = free_port()
    (tmp_path / "browser_settings.py").write_text(
        "from example.settings import *  # noqa: F403\n\n"
        f"DATABASES = {{'default': {{'ENGINE': 'django.db.backends.sqlite3', "
        f"'NAME': {str(tmp_path / 'db.sqlite3')!r}}}}}\n"
        f"FAUST = {{**FAUST, 'WEB_PORT': {port}, 'WEB_BIND': '127.0.0.1', "
        f"'DATADIR': {str(tmp_path / 'data')!r}}}\n"
    )
    env = user_env(
        DJANGO_SETTINGS_MODULE="browser_settings",
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(EXAMPLE), str(ROOT)]),
    )

    def manage(*args: str) -> None:
        subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=EXAMPLE,
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )

    manage("migrate", "--noinput")
    manage(
        "shell",
        "-c",
        "from django.contrib.auth.models import User; "
        "User.objects.create_superuser('admin', 'admin@example.com', 'pw')",
    )
    log = (tmp_path / "worker.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "faust", "worker", "-l", "info"],
        cwd=EXAMPLE,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/orders/counts/", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        "the worker did not serve the site:\n"
                        + (tmp_path / "worker.log").read_text()
                    ) from None
                time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (test extra)"
    )
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page, name: str) -> None:
    if os.environ.get("DJANGO_FAUST_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def order(page, base: str, account: str, amount: int) -> None:
    response = page.request.post(
        f"{base}/orders/",
        data=json.dumps({"account": account, "product": "tea", "amount": amount}),
    )
    assert response.status == 202, response.text()


def test_the_dashboard_and_the_admin_move_as_orders_arrive(site, browser):
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(f"{site}/orders/dashboard/")
    page.wait_for_function(
        "document.getElementById('status').textContent.startsWith('live')"
    )
    # The form on the page sends an order; its row appears and counts up,
    # without a reload.
    page.fill("input[name=account]", "zoe")
    page.fill("input[name=amount]", "5")
    page.click("#place")
    zoe = 'tr[data-account="zoe"] .orders'
    page.wait_for_function(f"document.querySelector('{zoe}')?.textContent === '1'")
    bars_before = page.evaluate(
        "[...document.querySelectorAll('#chart rect')]"
        ".reduce((n, r) => n + Number(r.dataset.orders), 0)"
    )
    order(page, site, "zoe", 9)
    page.wait_for_function(f"document.querySelector('{zoe}').textContent === '2'")
    assert page.text_content('tr[data-account="zoe"] .total') == "14"
    page.wait_for_function(
        "[...document.querySelectorAll('#chart rect')]"
        f".reduce((n, r) => n + Number(r.dataset.orders), 0) > {bars_before}"
    )
    screenshot(page, "dashboard.png")

    # The admin: log in, see the tables, watch a key's value change in place.
    page.goto(f"{site}/admin/login/?next=/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.goto(f"{site}/admin/django_faust/streamtable/")
    assert "orders-per-minute" in page.content()
    assert "example-order-counts-changelog" in page.content()
    screenshot(page, "admin-tables.png")
    page.goto(f"{site}/admin/django_faust/streamtable/order-counts/?q=zoe&match=exact")
    page.wait_for_function(
        "document.getElementById('faust-live').textContent"
        ".startsWith('live updates: on')"
    )
    cell = 'tr[data-key="\\"zoe\\""] .faust-value'
    assert page.text_content(cell) == "2"
    order(page, site, "zoe", 1)
    page.wait_for_function(
        "([s, v]) => document.querySelector(s)?.textContent === v", arg=[cell, "3"]
    )
    page.goto(f"{site}/admin/django_faust/streamtable/last-order/")
    assert "product" in page.content() and "tea" in page.content()
    screenshot(page, "admin-table.png")
    page.goto(f"{site}/admin/django_faust/streamworker/")
    assert "orders[0]" in page.content()
    screenshot(page, "admin-workers.png")
