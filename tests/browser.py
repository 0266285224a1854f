"""A headless Chromium driven over the DevTools protocol on a pipe (no extra Python package, no network port).

``Browser().open(url)`` loads a page with the network switched off (Chromium's own offline emulation, plus every
host name resolving to nothing), waits for it to settle and returns a :class:`PageReport` measured in the page
itself by JavaScript: images that failed to load, raw TeX left in the text, MathJax output, error banners.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


REPORT_JS = r"""
(() => {
  const images = Array.from(document.images);
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src'));
  const clone = document.body.cloneNode(true);
  clone.querySelectorAll('script, style, pre, code, .highlight, mjx-assistive-mml, textarea').forEach(e => e.remove());
  const text = clone.innerText || '';
  const rawTex = [];
  for (const pat of [/\\\(/, /\\\)/, /\$\$/, /\\\[/, /\\begin\{/]) {
    const m = text.match(pat);
    if (m) rawTex.push(text.substr(Math.max(0, m.index - 40), 100));
  }
  const problems = [];
  const visible = document.body.innerText || '';
  for (const pat of ['Traceback (most recent call last)', 'NameError', 'ModuleNotFoundError']) {
    if (visible.includes(pat)) problems.push(pat);
  }
  document.querySelectorAll('.output.traceback, .output.error, .output_error, div.admonition.error, .system-message, .problematic')
    .forEach(e => problems.push((e.className + ': ' + e.innerText).slice(0, 120)));
  const mathSources = document.querySelectorAll('.math, span.math, div.math').length;
  return {
    title: document.title,
    images: images.length,
    broken: broken,
    raw_tex: rawTex,
    problems: problems,
    math_sources: mathSources,
    math_rendered: document.querySelectorAll('mjx-container').length,
    mathjax_loaded: typeof window.MathJax === 'object' && !!window.MathJax.startup,
    figure_captions: Array.from(document.querySelectorAll('figcaption')).map(f => f.innerText.trim().slice(0, 80)),
  };
})()
"""


@dataclass
class PageReport:
    url: str
    title: str = ""
    images: int = 0
    broken: list = field(default_factory=list)
    raw_tex: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    math_sources: int = 0
    math_rendered: int = 0
    mathjax_loaded: bool = False
    figure_captions: list = field(default_factory=list)
    failed_requests: list = field(default_factory=list)


class Browser:
    """One Chromium process; pages open one after another in one tab."""

    def __init__(self, executable: str | None = None, width: int = 1280, height: int = 900):
        exe = executable or find_chromium()
        if exe is None:
            raise FileNotFoundError("no chromium on PATH")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def child_fds():  # Chromium reads commands on fd 3 and writes replies on fd 4
            a, b = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        args = [
            exe, "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
            "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
            "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
            "--allow-file-access-from-files", f"--window-size={width},{height}", "about:blank",
        ]
        self.proc = subprocess.Popen(args, pass_fds=(3, 4), preexec_fn=child_fds,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Runtime.enable", session=True)
        self.call("Network.enable", session=True)
        self.call("Network.emulateNetworkConditions",
                  {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}, session=True)

    # ------------------------------------------------------------------ protocol
    def _send(self, message: dict) -> None:
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")

    def _read(self, timeout: float) -> dict:
        import select

        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise ConnectionError("chromium closed the pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict | None = None, session: bool = False, timeout: float = 60) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        self._send(message)
        while True:
            reply = self._read(timeout)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._events.append(reply)

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True},
                           session=True)
        return result.get("result", {}).get("value")

    # ------------------------------------------------------------------ pages
    def open(self, url: str, settle_s: float = 20.0) -> PageReport:
        self._events.clear()
        self.call("Page.navigate", {"url": url}, session=True)
        deadline = time.monotonic() + settle_s
        while time.monotonic() < deadline:
            state = self.evaluate(
                "document.readyState === 'complete' && (typeof MathJax !== 'object' || !MathJax.startup || "
                "!MathJax.startup.promise ? true : (window.__mj_done = window.__mj_done || "
                "(MathJax.startup.promise.then(() => window.__mj_ok = true), true), !!window.__mj_ok))"
            )
            if state:
                break
            time.sleep(0.2)
        time.sleep(0.3)
        report = PageReport(url=url, **self.evaluate(REPORT_JS))
        report.failed_requests = [
            e["params"].get("errorText", "") + " " + self._request_urls.get(e["params"].get("requestId"), "")
            for e in self._events if e.get("method") == "Network.loadingFailed"
        ]
        return report

    @property
    def _request_urls(self) -> dict:
        return {e["params"]["requestId"]: e["params"]["request"]["url"] for e in self._events
                if e.get("method") == "Network.requestWillBeSent"}

    def screenshot(self, path: str) -> None:
        import base64

        data = self.call("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except Exception:  # noqa: BLE001 - it may already be gone
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._to_browser)
        os.close(self._from_browser)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
