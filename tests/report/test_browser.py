"""The report in a real browser: headless Chromium driven over the DevTools protocol.

Checks what a user does and sees: typing in the catalog search filters the cards, the category
and audit filters work, each organization page shows its connections with the right status,
pages fit a phone's width, and the Content-Security-Policy blocks nothing the site needs.
Screenshots go to ``test-artifacts/report/`` at the repository root.

Needs Chromium (Debian's ``chromium`` package; ``.ci/run`` installs it) and the test-only
``websockets`` package. Without them the test fails, never skips: a report nobody opened in a
browser is not tested.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.simulator import Simulator
from tests.conftest import REPO, Env
from tests.report.test_site import ACME_STATES, GLOBEX_STATES, seed

ARTIFACTS = REPO / "test-artifacts" / "report"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
]
# Registered before any page script runs, so a blocked stylesheet or script is seen.
WATCH_CSP = (
    "window.__csp = [];"
    "document.addEventListener('securitypolicyviolation',"
    " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
)
VISIBLE_CARDS = (
    "[...document.querySelectorAll('#cards [data-item]')]"
    ".filter(e => e.offsetParent !== null).map(e => e.dataset.provider)"
)
APP_STATES = (
    "Object.fromEntries([...document.querySelectorAll('.app')].map(a => "
    "[a.dataset.provider, a.querySelector('.card-head .status').innerText.trim()]))"
)


def chromium_binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if found is None:
        pytest.fail(
            "Chromium is not installed, so the report cannot be tested in a browser. Install "
            "Debian's package: apt-get update && apt-get install -y chromium (.ci/run does this)."
        )
    return found


class DevTools:
    """A minimal Chrome DevTools Protocol client: one websocket, flat sessions, no events."""

    def __init__(self, ws: Any) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        message: dict[str, Any] = {"id": msg_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self._ws.send(json.dumps(message))
        deadline = time.monotonic() + 15
        while True:
            reply = json.loads(self._ws.recv(timeout=max(deadline - time.monotonic(), 0.1)))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                return reply.get("result", {})


class Tab:
    def __init__(self, devtools: DevTools) -> None:
        self.dt = devtools
        target = devtools.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = devtools.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.call("Page.enable")
        self.call("Page.addScriptToEvaluateOnNewDocument", source=WATCH_CSP)
        self.viewport(1280, 900)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self.dt.call(method, self.session, **params)

    def viewport(self, width: int, height: int, *, mobile: bool = False) -> None:
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=mobile,
        )

    def eval(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, path: Path) -> None:
        url = path.resolve().as_uri()
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + 10
        check = f"location.href === {json.dumps(url)} && document.readyState === 'complete'"
        while not self.eval(check):
            assert time.monotonic() < deadline, f"{path.name} did not load"
            time.sleep(0.05)
        assert self.eval("window.__csp") == [], f"{path.name}: CSP blocked something"

    def type(self, text: str) -> None:
        """Key by key, as a user types, into the focused element."""
        for ch in text:
            self.call("Input.dispatchKeyEvent", type="keyDown", text=ch, key=ch, unmodifiedText=ch)
            self.call("Input.dispatchKeyEvent", type="keyUp", key=ch)

    def screenshot(self, name: str) -> Path:
        """The whole page, not just the viewport."""
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        shot = self.call(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        )
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def fits_width(self) -> bool:
        return bool(self.eval("document.documentElement.scrollWidth <= window.innerWidth"))


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevTools]:
    try:
        from websockets.sync.client import connect
    except ImportError:
        pytest.fail(
            "the browser test needs the test-only package websockets: pip install websockets"
        )
    profile = tmp_path_factory.mktemp("chromium-profile")
    proc = subprocess.Popen(
        [chromium_binary(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 15
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Chromium did not start (exit code {proc.poll()})")
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        with connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=10) as ws:
            devtools = DevTools(ws)
            yield devtools
            # the browser may close the socket before it answers
            with contextlib.suppress(Exception):
                devtools.call("Browser.close")
    finally:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture
def site(env: Env, sim: Simulator, tmp_path: Path) -> Path:
    seed(env, sim)
    plan_file = tmp_path / "plan.json"
    manifest = env.cwd / "manifests" / "globex.yaml"
    manifest.write_text(manifest.read_text().replace("hello@globex.example", "hi@globex.example"))
    assert env.run("plan", "--out", str(plan_file)).exit_code == 0
    out = tmp_path / "site"
    result = env.run("report", "--out", str(out), "--plan", str(plan_file))
    assert result.exit_code == 0, result.output
    return out


def test_catalog_search_and_category_filter(browser: DevTools, site: Path) -> None:
    tab = Tab(browser)
    tab.open(site / "catalog.html")
    assert sorted(tab.eval(VISIBLE_CARDS)) == sorted(ACME_STATES)
    assert tab.eval("document.querySelector('[data-filter-status]').innerText") == "7 of 7 shown"
    tab.screenshot("catalog")

    tab.eval("document.getElementById('q').focus()")
    tab.type("post")
    assert tab.eval(VISIBLE_CARDS) == ["postmark"]
    assert tab.eval("document.querySelector('[data-filter-status]').innerText") == "1 of 7 shown"
    tab.screenshot("catalog-search-post")

    tab.eval("document.getElementById('q').select()")
    tab.type("zzz")
    assert tab.eval(VISIBLE_CARDS) == []
    assert tab.eval("document.querySelector('[data-filter-empty]').offsetParent !== null")

    tab.eval("document.getElementById('q').value = ''")
    tab.eval(
        "const s = document.getElementById('category'); s.value = 'mapping';"
        "s.dispatchEvent(new Event('change', {bubbles: true}))"
    )
    assert sorted(tab.eval(VISIBLE_CARDS)) == ["geoapify", "google_maps", "mapbox"]

    tab.viewport(390, 844, mobile=True)
    tab.open(site / "catalog.html")
    assert tab.fits_width(), "the catalog scrolls sideways at phone width"
    tab.screenshot("catalog-phone")


def test_organization_pages_show_connection_status(browser: DevTools, site: Path) -> None:
    tab = Tab(browser)
    tab.open(site / "index.html")
    tab.screenshot("index")
    links = tab.eval(
        "[...document.querySelectorAll('nav a')].map(a => a.getAttribute('href'))"
        ".filter(h => h.startsWith('org-'))"
    )
    assert links == ["org-acme.html", "org-globex.html"]
    words = {"connected": "Connected", "error": "Error", "inactive": "Inactive"}
    for link, expected in zip(links, (ACME_STATES, GLOBEX_STATES), strict=True):
        tab.open(site / link)
        shown = tab.eval(APP_STATES)
        assert {k: v.split(maxsplit=1)[1] for k, v in shown.items()} == {
            k: words[v] for k, v in expected.items()
        }
        charts = tab.eval("document.querySelectorAll('figure.chart svg').length")
        assert charts == sum(1 for v in expected.values() if v != "inactive")
        colours = tab.eval(
            "Object.fromEntries([...document.querySelectorAll('.card-head .status')]"
            ".map(s => [s.dataset.state, getComputedStyle(s).color]))"
        )
        assert len(set(colours.values())) == len(colours), "each state has its own colour"
        tab.screenshot(link.removesuffix(".html"))
    tab.viewport(390, 844, mobile=True)
    tab.open(site / "org-globex.html")
    assert tab.fits_width(), "the organization page scrolls sideways at phone width"
    tab.screenshot("org-globex-phone")


def test_audit_filters_and_plan_page(browser: DevTools, site: Path) -> None:
    tab = Tab(browser)
    tab.open(site / "audit.html")
    rows = "[...document.querySelectorAll('#audit-rows tr')].filter(r => r.offsetParent !== null)"
    assert tab.eval(f"{rows}.length") == 23  # 21 creates + 2 status changes found by health
    tab.eval(
        "const o = document.getElementById('audit-org'); o.value = 'globex';"
        "o.dispatchEvent(new Event('change', {bubbles: true}))"
    )
    assert set(tab.eval(f"{rows}.map(r => r.dataset.organization)")) == {"globex"}
    assert tab.eval(f"{rows}.length") == 5
    tab.eval(
        "const a = document.getElementById('audit-action'); a.value = 'instance.status';"
        "a.dispatchEvent(new Event('change', {bubbles: true}))"
    )
    assert tab.eval(f"{rows}.map(r => r.dataset.action)") == ["instance.status"]
    tab.screenshot("audit-filtered")

    tab.open(site / "plan.html")
    assert "Plan: 1 to create, 0 to update, 1 to delete." in tab.eval("document.body.innerText")
    tab.screenshot("plan")
    tab.viewport(390, 844, mobile=True)
    for page in ("audit.html", "plan.html", "index.html"):
        tab.open(site / page)
        assert tab.fits_width(), f"{page} scrolls sideways at phone width"
