"""The HTML report as a person sees it: opened in headless Chromium (Debian's `chromium`,
installed by `make test`), its screenshot taken and read back, every network request Chromium
made read from its net log (the page must make none but its own file).

CARBONSCOPE_REPORT_PICTURE=path keeps the screenshot (make report-picture: docs/images/)."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

from PIL import Image

from tests.conftest import require_tool
from tests.test_report import build_ledger, report


def test_the_html_report_renders_its_charts_offline(tmp_path: Path) -> None:
    chromium = require_tool("chromium")
    built = build_ledger(tmp_path)
    page = tmp_path / "report.html"
    report(
        built,
        "--by",
        "job",
        "--format",
        "html",
        "--output",
        str(page),
        until="2026-01-01T00:30:00Z",
    )
    shot, netlog = tmp_path / "report.png", tmp_path / "netlog.json"
    served: list[str] = []

    class Files(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, format: str, *args: object) -> None:
            served.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/report.html"
    try:
        _screenshot(chromium, tmp_path, netlog, shot, url)
    finally:
        server.shutdown()
        server.server_close()
    # nothing else was asked for (the favicon is Chromium's own habit, not the page's)
    assert {path.split("?")[0] for path in served} - {"/favicon.ico"} == {"/report.html"}, served
    _check(shot, netlog, url)


def _screenshot(chromium: str, tmp_path: Path, netlog: Path, shot: Path, url: str) -> None:
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",  # as root in CI; the page is our own file
            "--disable-gpu",
            "--hide-scrollbars",
            # Chromium's own traffic (time sync, components, sync) off: what is left is the page's
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-features=NetworkTimeServiceQuerying",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=800,2100",
            f"--log-net-log={netlog}",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # nothing else resolves
            f"--screenshot={shot}",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def _check(shot: Path, netlog: Path, url: str) -> None:
    image = Image.open(shot).convert("RGB")
    assert image.size == (800, 2100)
    colours = {colour for _count, colour in image.getcolors(maxcolors=1 << 24) or []}
    # the charts' colours are on the page: cpu bars, the coverage strip, the gap, the lines
    for rgb in ((0x33, 0x66, 0xCC), (0x2C, 0xA0, 0x2C), (0xD6, 0x27, 0x28), (0xCC, 0x33, 0x00)):
        assert any(all(abs(a - b) <= 12 for a, b in zip(rgb, c, strict=True)) for c in colours), rgb
    log = netlog.read_text().rstrip()
    if not log.endswith("}"):  # a net log cut short at exit lacks its closing brackets
        log = log.rstrip(",") + "]}"
    events = json.loads(log)
    start_job = events["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    # the page's requests have the page as initiator; Chromium's own (component updates,
    # accounts) are "not an origin": only the first kind counts
    jobs = [event.get("params", {}) for event in events["events"] if event["type"] == start_job]
    fetched = {
        job["url"]
        for job in jobs
        if "url" in job
        and job.get("initiator") != "not an origin"
        and job["url"] != url
        and not job["url"].endswith("/favicon.ico")  # the browser's, for the tab
        and not job["url"].startswith("data:")
    }
    assert not fetched, fetched
    assert url in {job.get("url") for job in jobs}  # the log did see the page load
    keep = os.environ.get("CARBONSCOPE_REPORT_PICTURE")
    if keep:
        shutil.copyfile(shot, keep)
