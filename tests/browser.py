"""A real browser for the HTML pages' tests: headless Chromium, driven by its command line alone.

`check_page` loads a copy of a page with a small script put first in its <head>, which records every
error (a script's, an image or file that fails to load) and, once the page has loaded, every image's
natural size and every resource fetched from outside the page; it then clicks a sortable table's
header (the page's own script must run cleanly) and writes all of it into the DOM, which
`--dump-dom` hands back. `screenshot` takes a picture of the page itself, as tall as the page.
No driver (Selenium, Playwright) is needed: Debian's chromium package is enough (.ci/run installs it).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
MARKER = "kit-browser-check"

CHECK = """<script>
window.__kitErrors = [];
window.addEventListener('error', function (e) {
  var t = e.target;
  window.__kitErrors.push(t && t !== window && (t.src || t.href) ? 'failed to load ' + (t.src || t.href).slice(0, 80)
                                                                 : String(e.message));
}, true);
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var th = document.querySelector('table.sortable th:nth-child(5)') || document.querySelector('table.sortable th');
  var sorted = null;
  if (th) { th.click(); th.click(); sorted = th.textContent; }
  var out = {
    errors: window.__kitErrors,
    images: images.map(function (i) { return {alt: i.alt, complete: i.complete, width: i.naturalWidth,
                                               height: i.naturalHeight}; }),
    external: performance.getEntriesByType('resource').map(function (r) { return r.name; })
                         .filter(function (n) { return n.indexOf('data:') !== 0; }),
    height: document.documentElement.scrollHeight,
    title: document.title,
    sorted: sorted
  };
  var pre = document.createElement('pre');
  pre.id = 'MARKER';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>""".replace("MARKER", MARKER)


def find_chromium() -> str | None:
    """A Chromium or Chrome on this machine (KIT_CHROMIUM names one), else None."""
    named = os.environ.get("KIT_CHROMIUM")
    if named:
        return shutil.which(named) or (named if Path(named).is_file() else None)
    return next((path for path in map(shutil.which, CANDIDATES) if path), None)


def _run(browser: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="kit-chromium-") as profile:
        return subprocess.run([browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                               "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)


def check_page(browser: str, page: Path, width: int = 1280) -> dict:
    """Load `page` (a copy with CHECK first in <head>) and return what the check recorded."""
    text = Path(page).read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="kit-page-") as folder:
        copy = Path(folder) / Path(page).name
        copy.write_text(text.replace("<head>", "<head>" + CHECK, 1), encoding="utf-8")
        done = _run(browser, f"--window-size={width},1000", "--virtual-time-budget=15000", "--dump-dom",
                    copy.resolve().as_uri())
    found = re.search(f'<pre id="{MARKER}">(.*?)</pre>', done.stdout, flags=re.S)
    if not found:
        raise AssertionError(f"{page}: the browser gave no check result (exit {done.returncode}); "
                             f"stderr: {done.stderr[-2000:]}")
    return json.loads(html.unescape(found.group(1)))


TIMING = """<script>
window.addEventListener('load', function () {
  var pre = document.createElement('pre');
  pre.id = 'MARKER';
  pre.textContent = JSON.stringify({load_ms: performance.now()});
  document.body.appendChild(pre);
});
</script>""".replace("MARKER", MARKER)


def load_time(browser: str, page: Path, width: int = 1280) -> dict:
    """How long `page` takes to open: load_ms, from navigation to its load event (the HTML parsed, every
    embedded image decoded, the page laid out), wall_s, the browser process's (its start included), and
    cpu_s, the CPU seconds the browser's processes used (what a busy machine does not inflate).
    Real time: no --virtual-time-budget, which would fast-forward the page's clock."""
    text = Path(page).read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="kit-page-") as folder:
        copy = Path(folder) / Path(page).name
        copy.write_text(text.replace("<head>", "<head>" + TIMING, 1), encoding="utf-8")
        started, children = time.perf_counter(), _children_cpu()
        done = _run(browser, f"--window-size={width},1000", "--dump-dom", copy.resolve().as_uri())
        wall, cpu = time.perf_counter() - started, _children_cpu() - children
    found = re.search(f'<pre id="{MARKER}">(.*?)</pre>', done.stdout, flags=re.S)
    if not found:
        raise AssertionError(f"{page}: the browser gave no load time (exit {done.returncode}); "
                             f"stderr: {done.stderr[-2000:]}")
    return {**json.loads(html.unescape(found.group(1))), "wall_s": wall, "cpu_s": cpu}


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children: the browser's, whatever the load."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def screenshot(browser: str, page: Path, out: Path, width: int = 1280, height: int = 2000) -> Path:
    """A PNG of `page` at `width` x `height` (pass the page's height for all of it)."""
    done = _run(browser, f"--window-size={width},{height}", "--virtual-time-budget=15000",
                f"--screenshot={Path(out).resolve()}", Path(page).resolve().as_uri())
    if not Path(out).is_file():
        raise AssertionError(f"{page}: no screenshot (exit {done.returncode}); stderr: {done.stderr[-2000:]}")
    return Path(out)
