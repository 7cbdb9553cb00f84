"""One self-contained HTML page: headings, paragraphs, tables a reader can copy, and PNG figures embedded as data
URIs (no external URL, no script, no font to fetch: the file opens offline and mails as one attachment)."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;margin:2em auto;
max-width:1100px;color:#222;line-height:1.45;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;
margin-top:1.8em}p.sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:.6em 0 1em 0;font-size:.92em}th,td{border:1px solid #ccc;padding:.25em .6em;
text-align:left}th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#1a7f37;font-weight:600}.bad{color:#b42318;font-weight:600}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{color:#555;font-size:.9em}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:1em}
code{background:#f6f6f6;padding:0 .25em}
"""


@dataclass
class Page:
    """A page built section by section; :meth:`html` renders it."""

    title: str
    subtitle: str = ""
    parts: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def text(self, text: str, *, cls: str = "") -> None:
        klass = f' class="{cls}"' if cls else ""
        self.parts.append(f"<p{klass}>{html.escape(text)}</p>")

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]], *, status: Sequence[str | None] = ()) -> None:
        """A table; numbers are right-aligned; ``status`` (one per row: ``ok``, ``bad`` or None) colours the last
        cell of a row."""
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = []
        for i, row in enumerate(rows):
            cells = []
            for j, v in enumerate(row):
                cls = "num" if isinstance(v, (int, float)) or _numeric(v) else ""
                if j == len(row) - 1 and i < len(status) and status[i]:
                    cls = status[i]
                cells.append(f'<td class="{cls}">{html.escape(_cell(v))}</td>' if cls else
                             f"<td>{html.escape(_cell(v))}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        self.parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")

    def figure(self, png: str | Path, caption: str) -> None:
        """Embed a PNG file (its bytes, base64) with a caption."""
        data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
        name = Path(png).name
        self.figures.append(name)
        self.parts.append(f'<figure data-name="{html.escape(name)}"><img alt="{html.escape(caption)}" '
                          f'src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}</figcaption></figure>')

    def grid(self, items: Sequence[tuple[str | Path, str]]) -> None:
        """Figures side by side (two per row on a wide screen)."""
        start = len(self.parts)
        for png, caption in items:
            self.figure(png, caption)
        inner = "".join(self.parts[start:])
        del self.parts[start:]
        self.parts.append(f'<div class="grid">{inner}</div>')

    def html(self) -> str:
        sub = f'<p class="sub">{html.escape(self.subtitle)}</p>' if self.subtitle else ""
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(self.title)}'
                f'</title><meta name="viewport" content="width=device-width,initial-scale=1"><style>{_CSS}</style>'
                f"</head><body><h1>{html.escape(self.title)}</h1>{sub}{''.join(self.parts)}</body></html>\n")

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.html(), encoding="utf-8")
        tmp.replace(path)
        return path


def _numeric(v: Any) -> bool:
    s = str(v).replace(",", "").replace("%", "").replace("x", "").strip()
    try:
        float(s.split()[0])
    except (ValueError, IndexError):
        return False
    return True


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
