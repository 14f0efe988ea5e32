"""The page in headless Chromium (Debian's chromium + chromedriver), served by real gunicorn."""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
from typing import Iterator

import pytest

from apptest_support import redis_url

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="Debian's chromium and chromium-driver are not installed "
           "(apt-get install chromium chromium-driver)")


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="swarmlab-apptest-chromium-")
    options = webdriver.ChromeOptions()
    # Explicit binary and driver: selenium-manager must not try to download anything.
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_buttons_change_the_value_without_reload(gunicorn_factory, redis_pair, counter_key,
                                                 browser) -> None:
    # `browser` last: it is torn down first, so gunicorn is not left waiting on its keep-alives.
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    master, _replica = redis_pair
    master.client().set(counter_key, 40)
    app = gunicorn_factory({"REDIS_URL": redis_url(master), "COUNTER_KEY": counter_key})

    browser.get(app.base + "/")
    wait = WebDriverWait(browser, 10)
    value = browser.find_element(By.ID, "value")
    assert value.text == "40"
    assert browser.find_element(By.ID, "page-served-by").text == socket.gethostname()
    # A marker on window survives only if the page is never reloaded.
    browser.execute_script("window.__noReload = true;")

    increment = browser.find_element(By.ID, "increment")
    for expected in ("41", "42", "43"):
        wait.until(ec.element_to_be_clickable(increment)).click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "value"), expected))
        assert value.text == expected
    assert master.client().get(counter_key) == "43"

    browser.find_element(By.ID, "decrement").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "value"), "42"))

    wait.until(ec.element_to_be_clickable((By.ID, "reset"))).click()
    wait.until(lambda d: d.find_element(By.ID, "value").text == "0")
    assert master.client().get(counter_key) == "0"
    assert browser.execute_script("return window.__noReload === true;")
    assert browser.find_element(By.ID, "served-by").text == socket.gethostname()
    assert browser.find_element(By.ID, "error").text == ""


ATTACK_PAGE = """<!doctype html>
<html><body>
<iframe name="sink1"></iframe><iframe name="sink2"></iframe>
<!-- the JSON-over-form trick: text/plain makes the body '{"by": 5, "x": "="}' -->
<form id="plain" method="post" enctype="text/plain" target="sink1" action="{target}">
  <input name='{"by": 5, "x": "' value='"}'></form>
<form id="empty" method="post" target="sink2" action="{target}"></form>
<script>
  document.getElementById("plain").submit();
  document.getElementById("empty").submit();
  fetch("{target}", {method: "POST", mode: "no-cors"});
  fetch("{target}", {method: "POST", mode: "no-cors", body: "{}"});
  navigator.sendBeacon("{target}");
</script>
</body></html>"""


@pytest.fixture
def attacker_site() -> Iterator[tuple[str, list[str]]]:
    """A page of another site (another loopback address, so another origin and site) that
    tries to change the counter through the visitor's browser."""
    import http.server
    import threading

    page: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            body = page[0].encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.2", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.2:{server.server_address[1]}/", page
    finally:
        server.shutdown()
        server.server_close()


def test_another_site_cannot_change_the_counter(gunicorn_factory, redis_pair, counter_key,
                                                attacker_site, browser) -> None:
    from apptest_support import sample, wait_for

    master, _replica = redis_pair
    master.client().set(counter_key, 40)
    app = gunicorn_factory({"REDIS_URL": redis_url(master), "COUNTER_KEY": counter_key})
    url, page = attacker_site
    target = app.base + "/api/counter/increment"
    page.append(ATTACK_PAGE.replace("{target}", target))

    browser.get(url)

    def posts_by_status() -> dict[str, float]:
        scrape = app.metrics()
        return {status: sample(scrape, "counter_http_requests_total", method="POST",
                               endpoint="/api/counter/increment", status=status)
                for status in ("200", "403", "415")}

    # All five requests reached the app (the test would prove nothing otherwise)...
    wait_for(lambda: sum(posts_by_status().values()) >= 5, 15, "the five cross-site POSTs")
    # ...and every one was refused.
    assert posts_by_status() == {"200": 0, "403": 5, "415": 0}
    assert master.client().get(counter_key) == "40"
