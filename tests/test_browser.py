"""The built book, opened in a real browser: every page of ``_toc.yml``, in headless Chromium.

The book is built into a temporary folder, served by ``http.server`` on 127.0.0.1, and each
page is opened with Playwright driving Debian's ``chromium`` (``/usr/bin/chromium``, or
``$WOOF_CHROMIUM``; ``.ci/run`` installs it). For every page we check:

- the title (``<h1>`` of the source, then the book's title) and the page's ``<h1>``;
- every image has loaded (``naturalWidth > 0``);
- chapter pages built from a notebook have a Colab launch link to *that* chapter's
  ``.ipynb`` on the repository and branch configured in ``_config.yml``;
- no JavaScript errors: no uncaught exception and no ``console.error``;
- no request leaves 127.0.0.1: the book must read offline. Such requests are blocked and
  listed; any one fails the test (web fonts, Thebe, analytics, MathJax from a CDN would),
  except those in ``KNOWN_EXTERNAL`` (none now), which are reported as warnings with what
  an offline reader loses;
- formulas are typeset by the book's own MathJax (on the pages that have math);
- no same-site resource answers an HTTP error (a missing stylesheet, image or favicon);
- every same-site link resolves (HTTP 200), and its ``#fragment`` names an element there.

A full-page screenshot of each page goes to ``_build/screenshots/`` (git-ignored) for a
person to look at. A missing Chromium or Playwright fails the test with the fix; it is never
skipped.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
SCREENSHOTS = REPO / "_build" / "screenshots"
CHROMIUM = Path(os.environ.get("WOOF_CHROMIUM", "/usr/bin/chromium"))
# The flags the issue asks for, minus --headless, which Playwright adds itself
# (headless=True), and minus --user-data-dir, which it sets from user_data_dir.
CHROMIUM_FLAGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# External resources the theme or Sphinx load that we know of and accept for now. They are
# blocked here (the test machine is offline, like a reader without a network) and reported
# as warnings, with what the reader loses; their "Failed to load resource" console errors
# are not counted as ours. Any other request outside 127.0.0.1 fails the test.
KNOWN_EXTERNAL: dict[str, str] = {}
CONFIG = yaml.safe_load((REPO / "_config.yml").read_text())
TOC = yaml.safe_load((REPO / "_toc.yml").read_text())


def toc_pages(toc: dict) -> list[str]:
    """Every document of a jb-book ``_toc.yml``, in reading order, without suffix."""
    pages = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                pages.append(str(Path(entry["file"]).with_suffix("")))
            walk(entry.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return pages


PAGES = toc_pages(TOC)


def source_of(page: str) -> Path:
    """The file a page is written in: for a jupytext pair, the MyST ``.md`` half."""
    for suffix in (".md", ".ipynb"):
        path = REPO / f"{page}{suffix}"
        if path.is_file():
            return path
    raise FileNotFoundError(f"_toc.yml lists {page!r}, but neither {page}.md nor {page}.ipynb exists")


def plain_text(text: str) -> str:
    """Undo Sphinx's "smart quotes" and dashes, so a source heading compares with the page."""
    for fancy, plain in (
        ("\u2019", "'"),
        ("\u2018", "'"),
        ("\u201c", '"'),
        ("\u201d", '"'),
        ("\u2013", "--"),
        ("\u2014", "---"),
    ):
        text = text.replace(fancy, plain)
    return text


def expected_heading(page: str) -> str:
    """The page's first ``# heading`` as plain text (inline code and emphasis marks removed)."""
    for line in source_of(page).read_text().splitlines():
        if line.startswith("# "):
            return re.sub(r"[`*]", "", line[2:]).strip()
    raise ValueError(f"{source_of(page)} has no '# ' title line")


def expected_colab_url(page: str) -> str | None:
    """The Colab link Jupyter Book should put on a page built from ``<page>.ipynb``, else None."""
    if not (REPO / f"{page}.ipynb").is_file():
        return None
    owner_repo = urllib.parse.urlparse(CONFIG["repository"]["url"]).path.strip("/")
    branch = CONFIG["repository"].get("branch", "main")
    book_path = (CONFIG["repository"].get("path_to_book") or "").strip("/")
    in_repo = "/".join(p for p in (book_path, f"{page}.ipynb") if p)
    colab = CONFIG["launch_buttons"]["colab_url"].rstrip("/")
    return f"{colab}/github/{owner_repo}/blob/{branch}/{in_repo}"


# --- serving and browsing -----------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output clean
        pass


def serve(directory: Path):
    """Serve ``directory`` on 127.0.0.1 (an ephemeral port) in a thread; return (server, base URL)."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def launch_browser(user_data_dir: Path):
    """Start Playwright and headless Chromium with a fresh profile; fail (never skip) with the fix."""
    if not CHROMIUM.is_file():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}. Install Debian's browser with "
            "`apt-get update && apt-get install -y chromium` (as .ci/run does), "
            "or point WOOF_CHROMIUM at a Chromium or Chrome binary.",
            pytrace=False,
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "Playwright is not installed: `pip install -e '.[test]'` (its Python package drives "
            "the system Chromium; no `playwright install` is needed).",
            pytrace=False,
        )
    playwright = sync_playwright().start()
    try:
        context = playwright.chromium.launch_persistent_context(
            str(user_data_dir),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
        )
    except Exception as exc:
        playwright.stop()
        pytest.fail(f"Chromium at {CHROMIUM} did not start: {exc}", pytrace=False)
    return playwright, context


@dataclass
class PageReport:
    """What one visit found. ``problems`` empty means the page passed."""

    url: str
    problems: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    images: int = 0
    links_checked: int = 0


class LinkChecker:
    """Fetch same-site URLs once each; remember their status and the ids in their HTML."""

    def __init__(self):
        self._cache: dict[str, tuple[int, set[str]]] = {}

    def fetch(self, url: str) -> tuple[int, set[str]]:
        if url not in self._cache:
            try:
                with urllib.request.urlopen(url, timeout=30) as response:
                    body = response.read().decode(errors="replace")
                    ids = set(re.findall(r'\bid="([^"]+)"', body))
                    self._cache[url] = (response.status, ids)
            except urllib.error.HTTPError as exc:
                self._cache[url] = (exc.code, set())
        return self._cache[url]

    def problem(self, href: str) -> str | None:
        """Why ``href`` (an absolute same-site URL) does not resolve, or None."""
        url, _, fragment = href.partition("#")
        status, ids = self.fetch(url)
        if status != 200:
            return f"link {href} answers HTTP {status}"
        fragment = urllib.parse.unquote(fragment)
        if fragment and url.endswith((".html", "/")) and fragment not in ids:
            return f"link {href}: no element with id {fragment!r} on that page"
        return None


_WAIT_FOR_IMAGES = """
async () => {
  const images = Array.from(document.images);
  await Promise.all(images.map(img => img.complete ? null :
      new Promise(done => { img.addEventListener('load', done); img.addEventListener('error', done); })));
  return images.map(img => ({src: img.currentSrc || img.src, width: img.naturalWidth}));
}
"""


def visit(
    context,
    url: str,
    base: str,
    links: LinkChecker,
    *,
    title: str | None = None,
    heading: str | None = None,
    colab: str | None = None,
    screenshot: Path | None = None,
) -> PageReport:
    """Open ``url`` in a new tab and check it as the module docstring says."""
    report = PageReport(url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"uncaught JavaScript exception: {exc}"))
    page.on("console", lambda msg: errors.append(f"console.error: {msg.text}") if msg.type == "error" else None)

    def on_response(response):
        if response.url.startswith(base) and response.status >= 400:
            report.problems.append(f"{response.url} answered HTTP {response.status}")

    page.on("response", on_response)

    def route(request_route):
        request_url = request_route.request.url
        if request_url.startswith(base) or request_url.startswith(("data:", "blob:", "about:")):
            request_route.continue_()
        else:
            report.blocked.append(request_url)
            request_route.abort()

    page.route("**/*", route)
    try:
        response = page.goto(url, wait_until="load", timeout=60_000)
        if response is None or response.status != 200:
            report.problems.append(f"the page answered HTTP {response.status if response else 'nothing'}")
        page.wait_for_load_state("networkidle", timeout=30_000)
        formulas = page.locator(".math").count()  # Sphinx's math, before MathJax typesets it
        if formulas:
            from playwright.sync_api import TimeoutError as PlaywrightTimeout

            try:
                page.wait_for_selector("mjx-container", timeout=30_000)
            except PlaywrightTimeout:
                report.problems.append(f"{formulas} formulas were not typeset: MathJax did not run")
        images = page.evaluate(_WAIT_FOR_IMAGES)
        report.images = len(images)
        for image in images:
            if not image["width"]:
                report.problems.append(f"image did not load: {image['src']}")
        if title is not None and plain_text(page.title()) != plain_text(title):
            report.problems.append(f"title is {page.title()!r}, expected {title!r}")
        if heading is not None:
            h1 = page.locator("main h1").first.inner_text().replace("#", "").strip()
            if plain_text(h1) != plain_text(heading):
                report.problems.append(f"<h1> is {h1!r}, expected {heading!r}")
        if colab is not None:
            launch = page.eval_on_selector_all(
                "a[href*='colab.research.google.com']", "links => links.map(a => a.href)"
            )
            if launch != [colab]:
                report.problems.append(f"Colab launch links are {launch}, expected exactly [{colab!r}]")
        hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
        for href in sorted(set(h for h in hrefs if h.startswith(base))):
            report.links_checked += 1
            problem = links.problem(href)
            if problem:
                report.problems.append(problem)
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
    finally:
        page.close()
    known = [url for url in report.blocked if url.startswith(tuple(KNOWN_EXTERNAL))]
    unknown = [url for url in report.blocked if url not in known]
    # A blocked request shows in the console as "Failed to load resource: net::ERR_FAILED";
    # forgive as many of those as there were blocked known requests.
    forgiven = len(known)
    for error in errors:
        if forgiven and "net::ERR_FAILED" in error:
            forgiven -= 1
            continue
        report.problems.append(error)
    for url in sorted(set(known)):
        reason = next(why for prefix, why in KNOWN_EXTERNAL.items() if url.startswith(prefix))
        warnings.warn(f"{url} blocked on {url_path(report.url)}: {reason}", stacklevel=2)
    if unknown:
        report.problems.append(
            "the page requested resources outside 127.0.0.1 (blocked; the book must read offline): "
            + ", ".join(sorted(set(unknown)))
        )
    return report


def url_path(url: str) -> str:
    return urllib.parse.urlparse(url).path


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def built_site(built_book) -> Path:
    """The book as `make book` builds it (-W -n), from the shared fixture in conftest.py."""
    return built_book


@pytest.fixture(scope="session")
def base_url(built_site):
    for old in SCREENSHOTS.glob("*.png"):  # no stale pictures of pages that are gone
        old.unlink()
    server, base = serve(built_site)
    yield base
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def browser():
    with tempfile.TemporaryDirectory(prefix="woof-chromium-") as profile_dir:
        playwright, context = launch_browser(Path(profile_dir))
        try:
            yield context
        finally:
            context.close()
            playwright.stop()


@pytest.fixture(scope="session")
def links():
    return LinkChecker()


# --- tests ----------------------------------------------------------------------------------


def test_the_built_site_has_exactly_the_pages_of_the_toc(built_site):
    built = {
        str(p.relative_to(built_site).with_suffix(""))
        for p in built_site.rglob("*.html")
        if not p.relative_to(built_site).parts[0].startswith("_")
    }  # _static: theme assets
    built -= {"genindex", "search", "index"}  # Sphinx's own pages, and the redirect to the root
    assert sorted(built) == sorted(PAGES), "pages built but not in _toc.yml, or listed but not built"


@pytest.mark.parametrize("page", PAGES)
def test_page_in_the_browser(page, built_site, base_url, browser, links):
    book_title = CONFIG["title"]
    heading = expected_heading(page)
    report = visit(
        browser,
        urllib.parse.urljoin(base_url, f"{page}.html"),
        base_url,
        links,
        title=f"{heading} — {book_title}",
        heading=heading,
        colab=expected_colab_url(page),
        screenshot=SCREENSHOTS / f"{page.replace('/', '__')}.png",
    )
    assert report.links_checked > 0, f"{page}: no same-site links found; is the sidebar there?"
    assert not report.problems, f"{page} ({report.url}):\n  " + "\n  ".join(report.problems)
    assert (SCREENSHOTS / f"{page.replace('/', '__')}.png").stat().st_size > 10_000


def test_every_chapter_notebook_is_a_page_with_a_launch_link():
    notebooks = {str(p.relative_to(REPO).with_suffix("")) for p in (REPO / "chapters").glob("*.ipynb")}
    assert notebooks <= set(PAGES)
    assert all(expected_colab_url(p) for p in notebooks)


# --- the checker itself can fail ---------------------------------------------------------------

_BROKEN_PAGE = """<!doctype html><html><head><title>Broken</title></head><body><main>
<h1>Broken</h1>
<img src="missing.png">
<img src="https://example.invalid/remote.png">
<a href="nowhere.html">a broken link</a>
<a href="good.html#no-such-id">a broken anchor</a>
<a href="good.html#here">a good anchor</a>
<script>undefinedFunction();</script>
<script>console.error("something went wrong");</script>
</main></body></html>"""

_GOOD_PAGE = """<!doctype html><html><head><title>Good</title><link rel="icon" href="data:,"></head>
<body><main><h1 id="here">Good</h1><a href="good.html">me</a></main></body></html>"""


def test_the_checker_reports_each_kind_of_problem(tmp_path, browser):
    (tmp_path / "broken.html").write_text(_BROKEN_PAGE)
    (tmp_path / "good.html").write_text(_GOOD_PAGE)
    server, base = serve(tmp_path)
    try:
        links = LinkChecker()
        bad = visit(
            browser,
            base + "broken.html",
            base,
            links,
            title="Other",
            heading="Broken",
            colab="https://colab.research.google.com/github/o/r/blob/main/x.ipynb",
        )
        good = visit(browser, base + "good.html", base, links, title="Good", heading="Good")
    finally:
        server.shutdown()
        server.server_close()
    found = "\n".join(bad.problems)
    for expected in [
        "title is 'Broken', expected 'Other'",
        "image did not load: " + base + "missing.png",
        "missing.png answered HTTP 404",
        "Colab launch links are []",
        "link " + base + "nowhere.html answers HTTP 404",
        "no element with id 'no-such-id'",
        "uncaught JavaScript exception",
        "console.error: something went wrong",
        "outside 127.0.0.1 (blocked; the book must read offline): https://example.invalid/remote.png",
    ]:
        assert expected in found, f"the checker missed {expected!r}; it reported:\n{found}"
    assert "good.html#here" not in found
    assert good.problems == [] and good.links_checked == 1


def test_a_missing_chromium_fails_with_the_fix(tmp_path, monkeypatch):
    """Without a browser the test must fail, saying how to install one; never skip."""
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", tmp_path / "no-chromium-here")
    with pytest.raises(pytest.fail.Exception, match=r"apt-get install -y chromium"):
        launch_browser(tmp_path / "profile")
