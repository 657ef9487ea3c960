"""Headless Chromium driven over the DevTools protocol, for tests of pages
whose scripts matter (the admin's live run page)."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import websocket

from tests.waiting import wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One page of a headless Chromium, spoken to over its DevTools websocket."""

    def __init__(self, ws_url: str) -> None:
        self.ws = websocket.create_connection(ws_url, timeout=10, suppress_origin=True)
        self.ids = itertools.count(1)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self.ids)
        self.ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == message_id:  # anything else is an event we did not ask for
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def set_cookie(self, url: str, name: str, value: str) -> None:
        self.send("Network.setCookie", url=url, name=name, value=value, httpOnly=True)

    def open(self, url: str) -> None:
        """Navigate and wait until the new document has loaded."""
        self.send("Page.navigate", url=url)
        self.wait_for(
            f"location.href === {json.dumps(url)} && document.readyState === 'complete'",
            what=f"{url} to load",
        )

    def set_viewport(self, width: int, height: int) -> None:
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        self.send("Emulation.setDeviceMetricsOverride", **metrics)

    def screenshot(self, path: Path) -> Path:
        """The whole page as a PNG at the current viewport width."""
        import base64

        height = int(self.evaluate("Math.ceil(document.documentElement.scrollHeight)") or 800)
        width = int(self.evaluate("window.innerWidth") or 1280)
        shot = self.send(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def wait_for(self, expression: str, *, timeout: float = 20.0, what: str = "") -> Any:
        """Poll a JS expression until it is truthy; its last value on timeout."""

        def value() -> Any:
            try:
                return self.evaluate(expression)
            except RuntimeError:
                return None  # the page is between documents while it navigates

        return wait_for(value, timeout, what=what or expression, interval=0.05)


def _devtools_port(profile: Path, proc: subprocess.Popen[bytes], timeout: float) -> int:
    marker = profile / "DevToolsActivePort"

    def written() -> str:
        if proc.poll() is not None:
            raise RuntimeError("chromium exited at start")
        return marker.read_text().strip() if marker.exists() else ""

    return int(wait_for(written, timeout, what="chromium's DevTools port", interval=0.05).splitlines()[0])


@contextmanager
def chromium(tmp_path: Path) -> Iterator[Browser]:
    """A headless Chromium with a throwaway profile; closed at the end of the block."""
    assert CHROMIUM, "no chromium on PATH"
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    argv = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
        "--remote-debugging-port=0", "about:blank",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    browser = None
    try:
        port = _devtools_port(profile, proc, timeout=30)
        pages = [t for t in httpx.get(f"http://127.0.0.1:{port}/json/list").json() if t["type"] == "page"]
        browser = Browser(pages[0]["webSocketDebuggerUrl"])
        browser.send("Page.enable")
        browser.send("Network.enable")
        yield browser
    finally:
        if browser is not None:
            browser.ws.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextmanager
def page_opener(tmp_path: Path) -> Iterator[Callable[[str], None]]:
    """`open_(url)` starts a headless Chromium showing `url` (no DevTools: the
    page reports what it sees itself); every one is stopped at the end."""
    from tests.servers import stop_process_group

    assert CHROMIUM, "no chromium on PATH"
    procs: list[subprocess.Popen[bytes]] = []

    def open_(url: str) -> None:
        argv = [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", url,
        ]  # fmt: skip
        log = (tmp_path / "chromium.log").open("wb")
        procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    try:
        yield open_
    finally:
        for proc in procs:
            stop_process_group(proc, timeout=10)
