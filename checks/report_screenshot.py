"""report.html in a real browser: write the page for a finished run and screenshot it in headless Chromium.

Not a CI test (needs a browser: `apt-get install chromium`). Checks that the page is self-contained
(it is copied alone into an empty folder before rendering, so a missing asset would show as broken) and
that the browser renders it; the PNG is for a person to look at.
Run:  .venv/bin/python checks/report_screenshot.py RUN_DIR   (e.g. a `make smoke` run)
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from selftaught.reporting.html import write_html_report

RESULTS = Path(__file__).resolve().parent / "results"


def browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    raise SystemExit("no Chromium found: apt-get install chromium")


def screenshot(page: Path, png: Path, width: int, height: int) -> float:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as alone:  # the page alone: any external asset would be missing
        copy = Path(alone) / "report.html"
        shutil.copy(page, copy)
        subprocess.run(
            [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
             f"--window-size={width},{height}", f"--screenshot={png}", copy.as_uri()],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=3000)
    args = parser.parse_args()
    start = time.perf_counter()
    page = write_html_report(args.run_dir)
    write_seconds = time.perf_counter() - start
    RESULTS.mkdir(exist_ok=True)
    png = RESULTS / "report_screenshot.png"
    render_seconds = screenshot(page, png, args.width, args.height)
    text = page.read_text()
    result = {
        "run_dir": str(args.run_dir),
        "page_bytes": len(text.encode()),
        "inline_images": len(re.findall(r'src="data:image/png;base64,', text)),
        "external_references": len(re.findall(r"""(?:src|href)=["'](?!data:)""", text)),
        "samples_shown": text.count('class="sample '),
        "write_seconds": round(write_seconds, 2),
        "render_seconds": round(render_seconds, 2),
        "screenshot": str(png.relative_to(RESULTS.parent.parent)),
        "screenshot_bytes": png.stat().st_size,
    }
    for key, value in result.items():
        print(f"{key:22} {value}")
    (RESULTS / "report_screenshot.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
