"""Real headless Chromium for the report tests, driven over the Chrome DevTools Protocol (aiohttp websocket).

`open_page(path, screenshot)` loads a local HTML file, waits until every plotly figure has drawn, and
returns what the page showed: console errors and uncaught exceptions, each plotly figure's rendered size,
whether the run manifest section is there, and the page text. The screenshot is written to `screenshot`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = ("chromium", "chromium-browser", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1000", "--remote-debugging-port=0",
         "--remote-allow-origins=*"]
# every plotly figure: the div and, once drawn, its SVG; sizes from the layout engine
PROBE = """(() => {
  const plots = [...document.querySelectorAll('.js-plotly-plot')].map(d => {
    const r = d.getBoundingClientRect(), svg = d.querySelector('svg.main-svg');
    const s = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    return {width: r.width, height: r.height, svg_width: s.width, svg_height: s.height,
            traces: (d.data || []).length};
  });
  return JSON.stringify({plots, manifest: !!document.querySelector('section#run-manifest'),
                         scripts_total: document.scripts.length, text: document.body.innerText});
})()"""


def chromium_binary() -> str:
    for name in CHROMIUM:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("headless Chromium is not installed: `python3 dev.py test` installs Debian's `chromium` when run "
                "as root; otherwise `sudo apt-get install chromium`")


@dataclass
class Page:
    errors: list[str]
    plots: list[dict[str, float]]
    manifest: bool
    text: str


@contextlib.contextmanager
def chromium() -> Iterator[str]:
    """A headless Chromium with a fresh profile; yields its DevTools HTTP address, killed afterwards."""
    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-"))
    proc = subprocess.Popen([chromium_binary(), *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chromium did not start its DevTools endpoint (exit {proc.poll()})")
            time.sleep(0.1)
        yield f"127.0.0.1:{port_file.read_text().split()[0]}"
    finally:
        proc.kill()
        proc.wait(10)
        shutil.rmtree(profile, ignore_errors=True)


async def _open(address: str, path: Path, screenshot: Path, timeout: float) -> Page:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.put(f"http://{address}/json/new?about:blank") as resp:
            target = json.loads(await resp.text())
        async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            ids = iter(range(1, 1_000_000))
            errors: list[str] = []
            loaded = asyncio.Event()
            pending: dict[int, asyncio.Future[Any]] = {}

            async def reader() -> None:
                async for msg in ws:
                    data = json.loads(msg.data)
                    if "id" in data and data["id"] in pending:
                        pending.pop(data["id"]).set_result(data)
                    method, params = data.get("method"), data.get("params", {})
                    if method == "Runtime.exceptionThrown":
                        details = params["exceptionDetails"]
                        errors.append(f"exception: {details.get('exception', {}).get('description', details['text'])}")
                    elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                        errors.append("console: " + " ".join(str(a.get("value", a.get("description")))
                                                             for a in params["args"]))
                    elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                        errors.append(f"log: {params['entry']['text']} {params['entry'].get('url', '')}")
                    elif method == "Page.loadEventFired":
                        loaded.set()

            task = asyncio.create_task(reader())

            async def call(method: str, **params: Any) -> dict[str, Any]:
                i = next(ids)
                fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                pending[i] = fut
                await ws.send_str(json.dumps({"id": i, "method": method, "params": params}))
                reply: dict[str, Any] = await asyncio.wait_for(fut, timeout)
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

            try:
                for domain in ("Page", "Runtime", "Log"):
                    await call(f"{domain}.enable")
                await call("Page.navigate", url=path.resolve().as_uri())
                await asyncio.wait_for(loaded.wait(), timeout)
                deadline = time.monotonic() + timeout
                while True:  # plotly draws after load; wait until every figure has its SVG
                    probe = json.loads((await call("Runtime.evaluate", expression=PROBE,
                                                   returnByValue=True))["result"]["value"])
                    drawn = all(p["svg_width"] > 0 for p in probe["plots"])
                    if (drawn and probe["plots"]) or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.25)
                await asyncio.sleep(0.5)  # late console errors
                metrics = await call("Page.getLayoutMetrics")
                size = metrics["cssContentSize"]
                shot = await call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                                  clip={"x": 0, "y": 0, "width": size["width"],
                                        "height": min(size["height"], 12000), "scale": 1})
                screenshot.write_bytes(base64.b64decode(shot["data"]))
            finally:
                task.cancel()
            return Page(errors, probe["plots"], probe["manifest"], probe["text"])


def open_page(address: str, path: Path, screenshot: Path, timeout: float = 60.0) -> Page:
    return asyncio.run(_open(address, path, screenshot, timeout))
