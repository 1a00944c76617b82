"""The rendered book read as a reader's browser reads it (headless Chromium through Playwright).

Each page of a built HTML book is loaded from disk at 1280 px and checked for
what a reader would notice: console errors, error outputs, broken links and
images, requests to the network, machine paths, figures without a caption or
alt text, tables wider than the text column. A screenshot of each page is
saved. Chromium comes from the system (Debian's ``chromium`` package, installed
by ``.ci/run``); Playwright only drives it and never downloads a browser.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

from playwright.sync_api import sync_playwright

#: Where Debian installs Chromium; ``CHROMIUM`` overrides it.
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"

#: Reader's window.
VIEWPORT = {"width": 1280, "height": 900}

_PAGE_FACTS = """
() => {
  const article = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  const column = article.getBoundingClientRect().width;
  const images = Array.from(article.querySelectorAll('img')).map(img => {
    const figure = img.closest('figure');
    const caption = figure ? figure.querySelector('figcaption') : null;
    return {src: img.getAttribute('src'), loaded: img.complete && img.naturalWidth > 0,
            alt: (img.getAttribute('alt') || '').trim(),
            caption: caption ? caption.textContent.trim() : ''};
  });
  const tables = Array.from(article.querySelectorAll('table')).map(t => ({
    width: t.getBoundingClientRect().width,
    header: Array.from(t.querySelectorAll('th')).slice(0, 4).map(h => h.textContent.trim()).join(' | ')
  }));
  const errors = Array.from(document.querySelectorAll('.output.traceback, .output.error, .ansi-red-fg'))
    .filter(e => e.closest('.cell_output')).map(e => e.textContent.slice(0, 120));
  const links = Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href'));
  return {column, images, tables, errors, links, html: document.documentElement.outerHTML};
}
"""


def _local_link_problem(page_path: Path, href: str, root: Path) -> str | None:
    """Why a link of a page does not resolve to a file of the built book (None when it does)."""
    parsed = urlparse(href)
    if parsed.scheme in ("http", "https", "mailto", "data", "javascript") or href.startswith("#"):
        return None
    if parsed.scheme == "file":
        target = Path(unquote(parsed.path))
    else:
        target = (page_path.parent / unquote(parsed.path)).resolve()
    if target.is_dir():
        target = target / "index.html"
    if not target.exists():
        return f"broken link {href}"
    if not target.resolve().is_relative_to(root.resolve()):
        return f"link outside the book {href}"
    return None


def check_page(page, path: Path, root: Path, forbidden=(), screenshot: Path | None = None) -> list[str]:
    """Problems of one built page (an empty list when there are none).

    Parameters
    ----------
    page : playwright Page
    path : Path
        The HTML file.
    root : Path
        The built book's folder (links must stay inside it).
    forbidden : sequence of str
        Text that must not appear anywhere in the page (the build folder's path).
    screenshot : Path, optional
        Where to save a full-page screenshot.
    """
    console, remote, failed = [], [], []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console.append(str(e)))
    page.on("request", lambda r: remote.append(r.url) if urlparse(r.url).scheme in ("http", "https") else None)
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.goto(path.resolve().as_uri(), wait_until="load")
    page.wait_for_timeout(200)
    facts = page.evaluate(_PAGE_FACTS)
    problems = [f"console error: {c}" for c in console]
    problems += [f"request to the network: {u}" for u in remote]
    problems += [f"failed to load: {u}" for u in failed if urlparse(u).scheme not in ("http", "https")]
    problems += [f"error output: {e}" for e in facts["errors"]]
    for image in facts["images"]:
        if not image["loaded"]:
            problems.append(f"broken image {image['src']}")
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
        problem = _local_link_problem(path, href, root)
        if problem:
            problems.append(problem)
    for text in forbidden:
        if text and text in facts["html"]:
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
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for name in targets:
                page = browser.new_page(viewport=VIEWPORT)
                shot = (
                    screenshot_dir / (name.replace("/", "__").removesuffix(".html") + ".png")
                    if screenshot_dir
                    else None
                )
                results[name] = check_page(page, html_dir / name, html_dir, forbidden, shot)
                page.close()
        finally:
            browser.close()
    return results
