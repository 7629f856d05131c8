#!/usr/bin/env python3
"""Checks the generated site for what Doxygen does not warn about.

  - math left untypeset: a `$` in the text of a page (outside code, scripts and
    styles) that could open a formula (not a price, not "the $ sign"), or a
    Doxygen formula command (\\f$, \\f[, \\f], or the internal \\_form#N)
    that reached the HTML;
  - Markdown bold that Doxygen left as **asterisks**;
  - anything loaded from the network: an http(s) address of MathJax or of a CDN;
  - MathJax missing: a page that loads mathjax/MathJax.js while the copy is absent;
  - an image or object whose file is not in the site.

Usage: check_html.py HTML_DIR   (standard library only; exit status 1 on a problem)
"""

from __future__ import annotations

import re
import sys
from html.parser import HTMLParser
from pathlib import Path

SKIPPED = {"script", "style", "code", "pre", "tt", "kbd"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
        "param", "source", "track", "wbr"}
NETWORK = re.compile(r"""https?://[^\s"'<>)]*(?:mathjax|cdn)[^\s"'<>)]*""", re.I)
RAW_FORMULA = re.compile(r"\\f[$\[\]{}]|\\_form#\d+")
# A dollar that starts a formula: followed by something other than a space, a
# digit (a price) or punctuation (a dollar sign mentioned in prose).
UNTYPESET = re.compile(r"\$(?=[^\s\d.,;:!?)\]'\"])")


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool]] = []  # (tag, text is skipped)
        self.texts: list[tuple[int, str]] = []
        self.sources: list[str] = []

    def skipped(self) -> bool:
        return bool(self.stack) and self.stack[-1][1]

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "data"):
            if tag in ("img", "object", "embed", "iframe") and attrs.get(key):
                self.sources.append(attrs[key])
        if tag in VOID:
            return
        classes = (attrs.get("class") or "").split()
        skip = self.skipped() or tag in SKIPPED or "fragment" in classes
        self.stack.append((tag, skip))

    def handle_startendtag(self, tag, attrs):
        if tag not in VOID:
            self.handle_starttag(tag, attrs)
            self.handle_endtag(tag)
        else:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        if not self.skipped():
            self.texts.append((self.getpos()[0], data))


def check(html_dir: Path) -> list[str]:
    problems: list[str] = []
    pages = sorted(p for p in html_dir.rglob("*.html") if "mathjax" not in p.relative_to(html_dir).parts)
    scripts = sorted(p for p in html_dir.rglob("*.js") if "mathjax" not in p.relative_to(html_dir).parts)
    if not (html_dir / "index.html").exists():
        problems.append(f"{html_dir}/index.html: missing")
    for path in pages + scripts:
        text = path.read_text(encoding="utf-8", errors="replace")
        for m in NETWORK.finditer(text):
            problems.append(f"{path}: loads from the network: {m.group(0)}")
        if path.suffix != ".html":
            continue
        if "mathjax/MathJax.js" in text and not (path.parent / "mathjax" / "MathJax.js").exists():
            problems.append(f"{path}: loads mathjax/MathJax.js, which is not in the site")
        page = Page()
        page.feed(text)
        for line, data in page.texts:
            for m in RAW_FORMULA.finditer(data):
                problems.append(f"{path}:{line}: Doxygen formula command in the text: {data.strip()[:80]!r}")
            for m in re.finditer(r"\*\*\S(?:[^*\n]*?\S)?\*\*", data):
                context = data[max(0, m.start() - 30) : m.end() + 30].strip()
                problems.append(f"{path}:{line}: Markdown bold left unrendered: {context!r}")
            for m in UNTYPESET.finditer(data):
                context = data[max(0, m.start() - 30) : m.end() + 30].strip()
                problems.append(f"{path}:{line}: raw '$' in the text (untypeset math?): {context!r}")
        for src in page.sources:
            if re.match(r"^[a-z]+:", src, re.I):
                continue
            if not (path.parent / src.split("#")[0]).exists():
                problems.append(f"{path}: image {src} is not in the site")
    return problems


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    problems = check(Path(sys.argv[1]))
    for p in problems:
        print(f"check_html: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
