"""The browser checks of the rendered book catch each problem a reader would see (on small hand-written pages)."""

import base64

from browser_checks import check_book

# a 1 x 1 PNG, so that images load from disk
_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def _page(body: str) -> str:
    head = "<!DOCTYPE html><html><head><meta charset='utf-8'><style>img {max-width: 100%}</style></head><body>"
    return f"{head}<article class='bd-article' style='width: 688px'>{body}</article></body></html>"


def test_a_clean_page_passes_and_each_problem_is_named(tmp_path):
    site = tmp_path / "html"
    site.mkdir()
    (site / "fig.png").write_bytes(_PNG)
    good = (
        "<figure><img src='fig.png' width='600' alt='Head motion per run by group and state'>"
        "<figcaption>Figure 1. Head motion.</figcaption></figure>"
        "<table style='width: 600px'><tr><th>term</th></tr><tr><td>a</td></tr></table>"
        "<a href='other.html'>other</a> <a href='#x'>here</a> <a href='https://example.org'>a site</a>"
    )
    (site / "good.html").write_text(_page(good))
    (site / "other.html").write_text(_page("<p>other</p>"))
    bad = (
        "<img src='fig.png'>"  # no caption, no alt
        "<img src='missing.png' alt='x'>"
        "<figure style='margin: 0'><img src='fig.png' width='900' alt='A wide figure'><figcaption>Wide.</figcaption>"
        "</figure>"
        "<table style='width: 900px'><tr><th>verdict</th></tr></table>"
        "<a href='nowhere.html'>gone</a>"
        f"<p>{tmp_path}/results/x.tsv</p>"
        "<div class='cell_output'><div class='output traceback'>ValueError: bad</div></div>"
        "<script>console.error('boom')</script>"
        "<img src='http://127.0.0.1:9/remote.png' alt='r'>"
    )
    (site / "bad.html").write_text(_page(bad))
    shots = tmp_path / "shots"
    problems = check_book(site, forbidden=[str(tmp_path)], screenshot_dir=shots)
    assert problems["good.html"] == [] and problems["other.html"] == []
    found = "\n".join(problems["bad.html"])
    for expected in (
        "figure without a caption: fig.png",
        "figure without alt text: fig.png",
        "broken image missing.png",
        "table wider than the column (900 > 688 px): verdict",
        "figure shrunk to 688 of its 900 px: fig.png",
        "broken link nowhere.html",
        f"machine path in the page: {tmp_path}",
        "error output: ValueError: bad",
        "console error: boom",
        "request to the network: http://127.0.0.1:9/remote.png",
    ):
        assert expected in found, expected
    assert sorted(p.name for p in shots.iterdir()) == ["bad.png", "good.png", "other.png"]
