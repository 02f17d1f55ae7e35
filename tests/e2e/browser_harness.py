"""Headless Chromium for the dashboard tests, over the Chrome DevTools Protocol (`websockets`).

The browser is Debian's `chromium` (installed by hack/ensure-chromium.sh when missing; no
downloaded browsers). Used by tests/e2e/test_dashboard.py and the real-node log test.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness import REPO, wait_for

SCREENSHOTS = REPO / "artifacts" / "screenshots"
WIDTH, HEIGHT = 1440, 900
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio", "--force-color-profile=srgb",
                  "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1", f"--window-size={WIDTH},{HEIGHT}"]


class Browser:
    """Headless Chromium and one page, over the DevTools protocol (a small synchronous client)."""

    def __init__(self, executable: str, workdir: Path) -> None:
        from websockets.sync.client import connect

        self.profile = workdir / "profile"
        self.log = open(workdir / "chromium.log", "w")
        self.process = subprocess.Popen([executable, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        active = self.profile / "DevToolsActivePort"
        port = wait_for(lambda: active.exists() and active.read_text().split("\n")[0].strip(), timeout=30,
                        what=f"Chromium's DevTools port (log: {workdir / 'chromium.log'})")
        targets = wait_for(lambda: [t for t in httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json() if t["type"] == "page"],
                           timeout=15, what="a Chromium page")
        self.ws = connect(targets[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=15)
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1, mobile=False)

    def send(self, method: str, timeout: float = 30, **params: Any) -> dict[str, Any]:
        ident = next(self.ids)
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == ident:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return dict(message.get("result") or {})
            self.events.append(message)

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait(self, expression: str, what: str, timeout: float = 30) -> Any:
        try:
            probe = f"(() => {{ const value = ({expression}); return value instanceof Node ? true : value; }})()"
            return wait_for(lambda: self.evaluate(probe), timeout=timeout, interval=0.2, what=what)
        except AssertionError as error:
            shot = self.screenshot("failed-wait")
            state = self.evaluate("JSON.stringify({hash: location.hash, body: document.body.dataset, "
                                  "text: document.body.innerText.slice(0, 1500)})")
            raise AssertionError(f"{error}\npage: {state}\nbrowser problems: {self.problems()}\nscreenshot: {shot}") from None

    def open(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        self.wait("document.readyState === 'complete'", f"{url} to load")

    def click(self, selector: str) -> None:
        found = self.evaluate(f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
                              " if (!el || el.disabled) return false; el.click(); return true; })()")
        assert found, f"no enabled element {selector}"

    def text(self, selector: str) -> str:
        return str(self.evaluate(f"(document.querySelector({json.dumps(selector)}) || {{}}).textContent || ''"))

    def type(self, selector: str, value: str) -> None:
        self.evaluate(f"(() => {{ const el = document.querySelector({json.dumps(selector)}); el.value = {json.dumps(value)};"
                      " el.dispatchEvent(new Event('input', {bubbles: true})); })()")

    def screenshot(self, name: str) -> Path:
        """The whole page (not just the viewport), as artifacts/screenshots/<name>.png."""
        height = int(self.evaluate("Math.ceil(document.documentElement.scrollHeight)") or HEIGHT)
        self.send("Emulation.setDeviceMetricsOverride", width=WIDTH, height=max(HEIGHT, min(height, 4000)), deviceScaleFactor=1, mobile=False)
        time.sleep(0.3)  # let layout and the progress-bar transitions settle
        data = self.send("Page.captureScreenshot", format="png")["data"]
        self.send("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1, mobile=False)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        path.write_bytes(base64.b64decode(data))
        return path

    def problems(self) -> list[str]:
        """Uncaught exceptions, console errors and CSP violations so far (failed HTTP requests are expected: 401s, 502 logs)."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params") or {}
            if method == "Runtime.exceptionThrown":
                found.append(json.dumps(params.get("exceptionDetails"))[:500])
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                found.append(json.dumps(params.get("args"))[:500])
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error" and params["entry"].get("source") != "network":
                found.append(params["entry"].get("text", "")[:500])
        return found

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.log.close()


def find_chromium() -> str:
    """Debian's chromium, installed with hack/ensure-chromium.sh (apt-get) when it is missing."""
    script = REPO / "hack" / "ensure-chromium.sh"
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=600)
    path = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode != 0 or not path or not shutil.which(path):
        pytest.fail(f"the dashboard tests need Chromium and {script} could not provide it (exit {done.returncode}):\n"
                    f"{done.stderr.strip()[-2000:]}\nInstall Debian's `chromium` package (apt-get install -y chromium) "
                    "or point KUBETASK_CHROMIUM at a Chromium/Chrome executable.", pytrace=False)
    return path
