"""The HTML page is one self-contained file: figures embedded as data URIs, text escaped, no external URL."""

from __future__ import annotations

import base64
import re

from chipfit.report.html import Page


def _png(path, colour=(255, 0, 0)):
    from PIL import Image

    Image.new("RGB", (4, 3), colour).save(path)
    return path


def test_page_embeds_its_figures_and_fetches_nothing(tmp_path):
    a, b = _png(tmp_path / "a.png"), _png(tmp_path / "b.png", (0, 0, 255))
    page = Page("A <design>", "sub & title")
    page.heading("Section")
    page.text("x < y & z")
    page.table(["name", "value", "budget"], [["<b>", 1.23456789, "within"], ["n", None, "over"]],
               status=["ok", "bad"])
    page.figure(a, "first")
    page.grid([(b, "second"), (a, "third")])
    out = page.write(tmp_path / "r.html")
    html = out.read_text()
    assert "<td>&lt;b&gt;</td>" in html
    assert "A &lt;design&gt;" in html and "x &lt; y &amp; z" in html
    assert not re.search(r"(https?:)?//[a-z]", html.replace("<!DOCTYPE html>", "")), "an external URL"
    srcs = re.findall(r'src="([^"]+)"', html)
    assert len(srcs) == 3 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert base64.b64decode(srcs[0].split(",", 1)[1]) == a.read_bytes()
    assert page.figures == ["a.png", "b.png", "a.png"]
    assert '<td class="num">1.235</td>' in html and '<td>-</td>' in html
    assert '<td class="ok">within</td>' in html and '<td class="bad">over</td>' in html
