"""Open a page in headless Chromium and prove it is fit to look at (for tests of generated HTML).

    from harness.browser import check_page          # tests/ on sys.path (tests/conftest.py puts it there)

    page = check_page(run_dir / "report.html", artifacts=tmp_path / "artifacts")
    assert page.images >= 3
    assert "failed" in page.text

``check_page`` starts Debian's ``/usr/bin/chromium`` through Playwright (``executable_path``; Playwright's own
browser downloads are never used), headless, with a fresh ``--user-data-dir`` and every background
service off (no network except the page's own files), and then checks that

- the page loads (``file://`` or ``http://``) and has a title and a non-empty body,
- every ``<img>`` finished loading with a non-zero natural size (a broken path fails, naming it),
- the console logged no error and the page raised no uncaught exception, and no request failed,

and saves a full-page screenshot into ``artifacts`` (the test's evidence of what it looked at). A problem
raises ``PageProblem`` listing all of them. ``chromium_available()`` lets a test skip with a reason when
Chromium or Playwright is missing.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class PageProblem(AssertionError):
    """The page did not render cleanly; ``problems`` lists each thing that was wrong."""

    def __init__(self, url: str, problems: list[str]) -> None:
        self.url, self.problems = url, problems
        super().__init__(f"{url}: " + "; ".join(problems))


@dataclass
class PageCheck:
    url: str
    title: str
    text: str  # the page's visible text (document.body.innerText)
    images: int  # <img> elements, all loaded
    screenshot: Path | None
    console: list[str] = field(default_factory=list)  # every console message (any level), for the test to read


def chromium_available() -> str | None:
    """None when check_page can run here, else the reason it cannot (for pytest.skip)."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    return None


def _url(page: str | Path) -> str:
    text = str(page)
    if text.startswith(("http://", "https://", "file://")):
        return text
    path = Path(text).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no page at {path}")
    return path.as_uri()


def check_page(page: str | Path, artifacts: Path | None = None, name: str | None = None,
               timeout: float = 30.0, width: int = 1280, height: int = 900) -> PageCheck:
    """Open ``page`` (a path or URL) in headless Chromium, check it (see the module docstring), save a
    screenshot as ``artifacts/<name>.png`` (name: the page's file stem) and return what was seen."""
    from playwright.sync_api import sync_playwright

    url = _url(page)
    problems: list[str] = []
    messages: list[str] = []
    profile = Path(tempfile.mkdtemp(prefix="labctl-chromium-"))
    shot: Path | None = None
    try:
        with sync_playwright() as pw:
            # a persistent context is how Playwright takes a --user-data-dir: a fresh one per check
            browser = pw.chromium.launch_persistent_context(
                str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                timeout=timeout * 1000, viewport={"width": width, "height": height})
            try:
                tab = browser.new_page()

                def on_console(msg: object) -> None:
                    kind, text = getattr(msg, "type", "?"), getattr(msg, "text", "")
                    messages.append(f"{kind}: {text}")
                    if kind == "error":
                        problems.append(f"console error: {text}")

                tab.on("console", on_console)
                tab.on("pageerror", lambda exc: problems.append(f"uncaught exception: {exc}"))
                tab.on("requestfailed", lambda req: problems.append(
                    f"request failed: {req.url} ({req.failure})"))
                response = tab.goto(url, wait_until="load", timeout=timeout * 1000)
                if response is not None and not response.ok and not url.startswith("file://"):
                    problems.append(f"HTTP {response.status}")
                title = tab.title()
                text = str(tab.evaluate("() => document.body ? document.body.innerText : ''"))
                broken = tab.evaluate(
                    "() => Array.from(document.images)"
                    ".filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src'))")
                count = int(tab.evaluate("() => document.images.length"))
                if broken:
                    problems.append(f"{len(broken)} of {count} images did not load: {', '.join(map(str, broken[:8]))}")
                if not title.strip():
                    problems.append("the page has no <title>")
                if not text.strip():
                    problems.append("the page body is empty")
                if artifacts is not None:
                    artifacts.mkdir(parents=True, exist_ok=True)
                    stem = name or Path(url.rsplit("/", 1)[-1]).stem or "page"
                    shot = artifacts / f"{stem}.png"
                    tab.screenshot(path=str(shot), full_page=True)
            finally:
                browser.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if problems:
        raise PageProblem(url, problems)
    return PageCheck(url=url, title=title, text=text, images=count, screenshot=shot, console=messages)
