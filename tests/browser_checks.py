"""The rendered book read as a reader's browser reads it (headless Chromium through Playwright).

Each page of a built HTML book is served from disk by a local HTTP server (as
a reader's web server would; ``file://`` pages cannot load their own fonts) and
loaded at 1280 px, then checked for
what a reader would notice: console errors, error outputs, broken links and
images, requests to the network, machine paths, figures without a caption or
alt text, figures shrunk below the size they were drawn for (their labels
then fall under the stated font size), tables wider than the text column. A screenshot of each page is
saved. Chromium comes from the system (Debian's ``chromium`` package, installed
by ``.ci/run``); Playwright only drives it and never downloads a browser.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

from playwright.sync_api import sync_playwright

#: Where Debian installs Chromium; ``CHROMIUM`` overrides it.
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"

#: Reader's window.
VIEWPORT = {"width": 1280, "height": 900}

_PAGE_FACTS = """
() => {
  const article = document.querySelector('article.bd-article') || document.querySelector('main') || document.body
    || document.documentElement;
  const column = article.getBoundingClientRect().width;
  const images = Array.from(article.querySelectorAll('img')).map(img => {
    const figure = img.closest('figure');
    const caption = figure ? figure.querySelector('figcaption') : null;
    return {src: img.getAttribute('src'), loaded: img.complete && img.naturalWidth > 0,
            alt: (img.getAttribute('alt') || '').trim(),
            declared: parseFloat(img.getAttribute('width') || img.style.width || '0'),
            shown: img.getBoundingClientRect().width,
            caption: caption ? caption.textContent.trim() : ''};
  });
  const tables = Array.from(article.querySelectorAll('table')).map(t => ({
    width: t.getBoundingClientRect().width,
    header: Array.from(t.querySelectorAll('th')).slice(0, 4).map(h => h.textContent.trim()).join(' | ')
  }));
  const errors = Array.from(document.querySelectorAll('.output.traceback, .output.error, .ansi-red-fg'))
    .filter(e => e.closest('.cell_output')).map(e => e.textContent.slice(0, 120));
  const links = Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href'));
  return {column, images, tables, errors, links, text: document.body ? document.body.innerText : ''};
}
"""


def _local_link_problem(page_url: str, href: str, base_url: str, root: Path) -> str | None:
    """Why a link of a page does not resolve to a file of the built book (None when it does)."""
    parsed = urlparse(href)
    if parsed.scheme in ("mailto", "data", "javascript") or href.startswith("#"):
        return None
    target_url = urljoin(page_url, href)
    if not target_url.startswith(base_url):
        return None if urlparse(target_url).scheme in ("http", "https") else f"link outside the book {href}"
    target = root / unquote(urlparse(target_url).path[len(urlparse(base_url).path) :])
    if target.is_dir():
        target = target / "index.html"
    if not target.exists():
        return f"broken link {href}"
    return None


@contextlib.contextmanager
def serve(root: Path):
    """Serve ``root`` on a free port of 127.0.0.1 for the block; yield its base URL (ending in ``/``)."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):  # no request log on the test's output
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _blank_font(message) -> bool:
    """MathJax 2's HTML-CSS output measures text with an empty font at ``about:blank`` (its MathJax_Blank
    face); Chromium reports that font as blocked. Nothing is fetched and nothing is wrong on the page."""
    location = (message.location or {}).get("url", "")
    return location == "about:blank" or message.text.startswith("Access to font at 'about:blank'")


def check_page(page, path: Path, root: Path, base_url: str, forbidden=(), screenshot: Path | None = None) -> list[str]:
    """Problems of one built page (an empty list when there are none).

    Parameters
    ----------
    page : playwright Page
    path : Path
        The HTML file.
    root : Path
        The built book's folder (links must stay inside it), served at ``base_url``.
    base_url : str
        From :func:`serve`.
    forbidden : sequence of str
        Text that must not appear in the page's file or in its text as shown (the build folder's path).
    screenshot : Path, optional
        Where to save a full-page screenshot.
    """
    console, remote, failed = [], [], []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" and not _blank_font(m) else None)
    page.on("pageerror", lambda e: console.append(str(e)))
    local = ("data:", "blob:", "about:", base_url)
    page.on("request", lambda r: None if r.url.startswith(local) else remote.append(r.url))
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.goto(base_url + path.relative_to(root).as_posix(), wait_until="load")
    page.wait_for_timeout(200)
    facts = page.evaluate(_PAGE_FACTS)
    problems = [f"console error: {c}" for c in console]
    problems += [f"request to the network: {u}" for u in remote]
    problems += [f"failed to load: {u}" for u in failed if u.startswith(base_url)]
    problems += [f"error output: {e}" for e in facts["errors"]]
    for image in facts["images"]:
        if not image["loaded"]:
            problems.append(f"broken image {image['src']}")
        if image["declared"] and image["shown"] < 0.98 * image["declared"]:
            problems.append(
                f"figure shrunk to {image['shown']:.0f} of its {image['declared']:.0f} px: {image['src'][:60]}"
            )
        if not image["caption"]:
            problems.append(f"figure without a caption: {image['src'][:80]}")
        if not image["alt"] or image["alt"].lower() in ("png", "image", "output", "<figure>"):
            problems.append(f"figure without alt text: {image['src'][:80]}")
    for table in facts["tables"]:
        if table["width"] > facts["column"] + 1:
            problems.append(
                f"table wider than the column ({table['width']:.0f} > {facts['column']:.0f} px): {table['header']}"
            )
    for href in facts["links"]:
        problem = _local_link_problem(page.url, href, base_url, root)
        if problem:
            problems.append(problem)
    shipped = path.read_text(errors="replace")
    for text in forbidden:
        if text and (text in shipped or text in facts["text"]):
            problems.append(f"machine path in the page: {text}")
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
    return problems


def check_book(html_dir: Path, forbidden=(), screenshot_dir: Path | None = None, pages=None) -> dict[str, list[str]]:
    """Load every page of a built book (or ``pages``, paths relative to it) and return each page's problems.

    Returns
    -------
    dict of page (relative path) -> list of problems
    """
    html_dir = Path(html_dir)
    targets = sorted(pages or [p.relative_to(html_dir).as_posix() for p in html_dir.rglob("*.html")])
    targets = [t for t in targets if not t.startswith(("_static/", "_sources/", "_images/")) and t != "genindex.html"]
    results = {}
    with serve(html_dir) as base_url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for name in targets:
                page = browser.new_page(viewport=VIEWPORT)
                shot = None
                if screenshot_dir is not None:
                    shot = screenshot_dir / (name.replace("/", "__").removesuffix(".html") + ".png")
                results[name] = check_page(page, html_dir / name, html_dir, base_url, forbidden, shot)
                page.close()
        finally:
            browser.close()
    return results
