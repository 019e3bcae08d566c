"""A tiny document model rendered twice: Markdown (images as files) and one HTML page
(images inlined as base64 PNG, so the page is self-contained).

Text is escaped in both: raw HTML never reaches report.md or report.html (only the
``<u>``/``</u>`` and ``**bold**`` / ```code``` markup the report itself writes). Text that
comes from the data (task names, file names, parameters) is wrapped in :class:`Literal` and
shown exactly as it is: no markup of either format applies to it."""

from __future__ import annotations

import base64
import html
import re


class Literal(str):
    """Text from the data, shown as is: every Markdown and HTML special character escaped."""


def literal(value) -> Literal:
    return Literal(value if isinstance(value, str) else str(value))


_MD_SPECIAL = re.compile(r"([\\`*\[\]()|])")  # what could make markup, a link or a table cell


def _md(text: str) -> str:
    """``text`` for report.md: HTML escaped (the report's own <u> kept), a Literal's
    Markdown punctuation backslash-escaped too."""
    if isinstance(text, Literal):
        return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False)).replace("\n", " ")
    s = html.escape(text, quote=False)
    return s.replace("&lt;u&gt;", "<u>").replace("&lt;/u&gt;", "</u>")


class Document:
    def __init__(self, title: str):
        self.title = title
        self.blocks: list[tuple] = []

    def heading(self, text: str, level: int = 2):
        self.blocks.append(("heading", level, text))

    def paragraph(self, text: str):
        """Plain text; ``**bold**`` and ``code`` spans are kept in both formats."""
        self.blocks.append(("paragraph", text))

    def table(self, header: list[str], rows: list[list[str]]):
        """Cells are strings; ``**x**`` is bold, ``<u>x</u>`` underlined (as in the paper)."""
        self.blocks.append(("table", header, rows))

    def image(self, name: str, png: bytes, caption: str = ""):
        self.blocks.append(("image", name, png, caption))

    def code(self, text: str):
        self.blocks.append(("code", text))

    # ------------------------------------------------------------------ render

    def markdown(self, image_dir: str = "report_files") -> tuple[str, dict[str, bytes]]:
        """Markdown text and the image files it references (relative name -> PNG bytes)."""
        out = [f"# {_md(self.title)}", ""]
        files = {}
        for block in self.blocks:
            kind = block[0]
            if kind == "heading":
                out += ["#" * block[1] + " " + _md(block[2]), ""]
            elif kind == "paragraph":
                out += [_md(block[1]), ""]
            elif kind == "code":
                out += ["```", block[1].rstrip("\n"), "```", ""]
            elif kind == "table":
                header, rows = block[1], block[2]
                out.append("| " + " | ".join(_cell_md(h) for h in header) + " |")
                out.append("|" + "|".join("---" for _ in header) + "|")
                for r in rows:
                    out.append("| " + " | ".join(_cell_md(c) for c in r) + " |")
                out.append("")
            elif kind == "image":
                _, name, png, caption = block
                rel = f"{image_dir}/{name}"
                files[rel] = png
                out += [f"![{_md(literal(caption or name))}]({rel})", ""]
        return "\n".join(out), files

    def html(self) -> str:
        body = []
        for block in self.blocks:
            kind = block[0]
            if kind == "heading":
                body.append(f"<h{block[1]}>{html.escape(block[2])}</h{block[1]}>")
            elif kind == "paragraph":
                body.append(f"<p>{_inline(block[1])}</p>")
            elif kind == "code":
                body.append(f"<pre>{html.escape(block[1])}</pre>")
            elif kind == "table":
                header, rows = block[1], block[2]
                head = "".join(f"<th>{_inline(h)}</th>" for h in header)
                trs = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rows)
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
            elif kind == "image":
                _, name, png, caption = block
                data = base64.b64encode(png).decode("ascii")
                body.append(
                    f'<figure><img alt="{html.escape(caption or name)}" '
                    f'src="data:image/png;base64,{data}"/>'
                    f"<figcaption>{html.escape(caption)}</figcaption></figure>"
                )
        style = (
            "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
            "table{border-collapse:collapse;margin:1em 0}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
            "td:first-child,th:first-child{text-align:left}"
            "img{max-width:100%}figcaption{color:#555;font-size:90%}"
            "pre{background:#f5f5f5;padding:8px;overflow:auto}"
        )
        return (
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(self.title)}</title><style>{style}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1>\n" + "\n".join(body) + "\n</body></html>\n"
        )


def _cell_md(text: str) -> str:
    s = _md(text)
    return s if isinstance(text, Literal) else s.replace("|", "\\|")


def _inline(text: str) -> str:
    """Escape text, then turn **bold**, `code` and <u>underline</u> into HTML (not in a
    Literal, which is only escaped)."""
    if isinstance(text, Literal):
        return html.escape(text)
    s = html.escape(text)
    s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
    s = re.sub(r"`(.+?)`", r"<code>\1</code>", s)
    s = s.replace("&lt;u&gt;", "<u>").replace("&lt;/u&gt;", "</u>")
    return s
