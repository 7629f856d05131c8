#!/usr/bin/env python3
"""Doxygen input filter for the project's Markdown pages.

The READMEs are written for a code-hosting site: GitHub-style math and links
relative to the file. Doxygen 1.9.4 understands neither, so this filter, run by
Doxygen on every *.md input (FILTER_PATTERNS), rewrites one file to stdout:

  math    $...$ -> \\f$...\\f$, $$...$$ and ```math blocks -> \\f[...\\f],
          $`...`$ -> \\f$...\\f$. Code spans and fenced code are left alone; an
          escaped \\$ and a dollar that opens no formula (a price, "$5 and $10")
          stay a literal dollar sign. The rules for what opens and closes a
          formula are Pandoc's (tex_math_dollars): an opening $ has a non-space
          character right after it, a closing $ a non-space character right
          before it and no digit right after it.
  pages   the first level-1 heading becomes the page title with a stable name:
          README.md -> the main page, lessons/NN_topic/README.md -> lessonNN,
          docs/notes/NAME.md -> note_NAME. Every other heading gets a label
          <page>-<github slug>, so that links with #anchors keep working.
  links   links to those pages (with or without #anchor) -> @ref; links to
          headers of common/, solutions/ or lessons/ -> the header's reference
          page; images in docs/figures -> the bare file name (IMAGE_PATH);
          links to any other file of the repository (sources, tests, hints)
          -> the repository path as code, since the site does not carry them.
  quotes  "text" -> “text” outside code: Doxygen would show straight-quoted text
          verbatim, formulas and code spans included.
  bold    **bold** and *emphasis* -> <b>, <em>: Doxygen leaves Markdown emphasis
          unrendered when it starts with a parenthesis, a code span or a formula.

Line numbers are kept (nothing is inserted before the end of the file, except
a title for a page that has none), so Doxygen's warnings point at the right
line of the original file.

Usage: md_filter.py FILE   (what Doxygen runs; standard library only)
"""

from __future__ import annotations

import re
import sys
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "docs" / "figures"

# Placeholders for protected spans: code spans, fenced blocks, formulas, comments.
_OPEN, _CLOSE = "\ue000", "\ue001"
_PLACEHOLDER = re.compile(_OPEN + r"(\d+)" + _CLOSE)


class Protected:
    """Text pieces set aside while the rest of the file is rewritten."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def put(self, text: str) -> str:
        self.items.append(text)
        return f"{_OPEN}{len(self.items) - 1}{_CLOSE}"

    def restore(self, text: str) -> str:
        # Protected pieces may contain placeholders themselves (a code span in a link).
        while _PLACEHOLDER.search(text):
            text = _PLACEHOLDER.sub(lambda m: self.items[int(m.group(1))], text)
        return text


# ---------------------------------------------------------------------------
# Pages: which file is which page
# ---------------------------------------------------------------------------

def page_of(path: Path) -> tuple[str, str] | None:
    """(page name, label prefix) of a Markdown page of the site, or None."""
    try:
        rel = path.resolve().relative_to(ROOT)
    except ValueError:
        return None
    parts = rel.parts
    if parts == ("README.md",):
        return "index", "readme"
    if len(parts) == 3 and parts[0] == "lessons" and parts[2] == "README.md":
        m = re.match(r"(\d+)_", parts[1])
        if m:
            return f"lesson{m.group(1)}", f"lesson{m.group(1)}"
    if len(parts) == 3 and parts[:2] == ("docs", "notes") and rel.suffix == ".md":
        name = re.sub(r"[^A-Za-z0-9_]", "_", rel.stem)
        return f"note_{name}", f"note_{name}"
    return None


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"`|\$|\*|_(?=\W)|(?<=\W)_", "", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link keeps its text
    out = []
    for ch in text.strip().lower():
        if ch in "-_" or ch.isalnum():
            out.append(ch)
        elif ch == " ":
            out.append("-")
        elif unicodedata.category(ch).startswith(("L", "N", "M")):
            out.append(ch)
    return "".join(out)


def label_chars(slug: str) -> str:
    """A Doxygen label may hold letters, digits, '_' and '-'."""
    return re.sub(r"[^A-Za-z0-9_\-]", "_", slug)


# ---------------------------------------------------------------------------
# Code: fenced blocks and code spans are never touched
# ---------------------------------------------------------------------------

_FENCE = re.compile(r"^([ \t]*)(`{3,}|~{3,})(.*)$")


def protect_blocks(lines: list[str], keep: Protected) -> list[str]:
    """Replaces fenced code blocks by placeholders; ```math blocks become \\f[...\\f]."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m or (m.group(2)[0] == "`" and "`" in m.group(3)):
            out.append(lines[i])
            i += 1
            continue
        indent, fence, info = m.groups()
        j = i + 1
        closer = re.compile(r"^[ \t]*" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}\s*$")
        while j < len(lines) and not closer.match(lines[j]):
            j += 1
        block = lines[i : j + 1]  # an unclosed fence runs to the end of the file
        if info.strip().lower() == "math":
            body = block[1:-1] if j < len(lines) else block[1:]
            # \f[ and \f] take the fence lines, so every line keeps its number.
            formula = [indent + "\\f["] + body + ([indent + "\\f]"] if j < len(lines) else [])
            if j >= len(lines):
                formula[-1] += "\\f]"
            out.append(keep.put("\n".join(formula)))
        else:
            out.append(keep.put("\n".join(block)))
        i = j + 1
    return out


def protect_comments(text: str, keep: Protected) -> str:
    return re.sub(r"<!--.*?-->", lambda m: keep.put(m.group(0)), text, flags=re.S)


def protect_code_spans(text: str, keep: Protected) -> str:
    """Code spans (CommonMark: a run of n backticks up to the next run of exactly n)."""
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i : i + 2])
            i += 2
            continue
        if ch != "`":
            out.append(ch)
            i += 1
            continue
        run = _TICKS.match(text, i).group(0)
        end = None
        for m in _TICKS.finditer(text, i + len(run)):
            if _BLANK_LINE.search(text, i, m.start()):
                break
            if m.group(0) == run:
                end = m.end()
                break
        if end is None:
            out.append(run)  # no closing run: literal backticks
            i += len(run)
            continue
        out.append(keep.put(text[i:end]))
        i = end
    return "".join(out)


_TICKS = re.compile(r"`+")


# ---------------------------------------------------------------------------
# Math
# ---------------------------------------------------------------------------

_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_DOLLAR_CODE = re.compile(r"\$" + _OPEN + r"(\d+)" + _CLOSE + r"\$")


def convert_math(text: str, keep: Protected) -> str:
    """$$..$$ -> \\f[..\\f], $`..`$ and $..$ -> \\f$..\\f$; other dollars stay."""
    out = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n:
            # An escaped dollar is Doxygen's \$ as well; other escapes pass through.
            out.append(text[i : i + 2])
            i += 2
            continue
        if ch != "$":
            out.append(ch)
            i += 1
            continue
        # GitLab/GitHub's $`...`$: the code span was set aside already.
        m = _DOLLAR_CODE.match(text, i)
        if m:
            span = keep.items[int(m.group(1))]
            ticks = len(span) - len(span.lstrip("`"))
            out.append(keep.put("\\f$" + span[ticks:-ticks].strip() + "\\f$"))
            i = m.end()
            continue
        if text.startswith("$$", i):
            end = _find_closing(text, i + 2, "$$")
            if end is not None and text[i + 2 : end].strip():
                out.append(keep.put("\\f[" + text[i + 2 : end] + "\\f]"))
                i = end + 2
                continue
            out.append("$$")
            i += 2
            continue
        if i + 1 < n and not text[i + 1].isspace():
            end = _find_inline_close(text, i + 1)
            if end is not None:
                out.append(keep.put("\\f$" + text[i + 1 : end] + "\\f$"))
                i = end + 1
                continue
        out.append("$")  # a dollar sign, not math: Doxygen prints it as it is
        i += 1
    return "".join(out)


def _find_closing(text: str, start: int, delim: str) -> int | None:
    """Index of the next unescaped delim before a blank line, or None."""
    j = start
    while j < len(text):
        if text[j] == "\\":
            j += 2
            continue
        if _BLANK_LINE.match(text, j):
            return None
        if text.startswith(delim, j):
            return j
        j += 1
    return None


def _find_inline_close(text: str, start: int) -> int | None:
    """Index of the $ closing an inline formula opened before `start`, or None.

    Pandoc's rule: the first unescaped $ closes; the formula fails (and the
    opening $ is a dollar sign) if that $ follows a space or precedes a digit,
    or if a blank line comes first.
    """
    j = start
    while j < len(text):
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if _BLANK_LINE.match(text, j):
            return None
        if c == "$":
            if text[j - 1].isspace() or text[j + 1 : j + 2].isdigit():
                return None
            return j
        j += 1
    return None


# ---------------------------------------------------------------------------
# Headings and links
# ---------------------------------------------------------------------------

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")


_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_NOT_PARAGRAPH = re.compile(r"^\s*$|^ {0,3}(?:[-*+>|#]|\d+[.)]\s)|^ {4}")


def _setext_to_atx(lines: list[str]) -> list[str]:
    """Title + ===/--- underline -> '# Title' / '## Title' and an empty line."""
    out = list(lines)
    for i in range(1, len(out)):
        m = _SETEXT.match(out[i])
        if not m or _NOT_PARAGRAPH.match(out[i - 1]) or _PLACEHOLDER.search(out[i - 1]):
            continue
        if i >= 2 and out[i - 2].strip():  # only a one-line paragraph is a heading here
            continue
        out[i - 1] = ("# " if m.group(1)[0] == "=" else "## ") + out[i - 1].strip()
        out[i] = ""
    return out


def label_headings(lines: list[str], page: tuple[str, str] | None, source: Path) -> list[str]:
    """Gives the first level-1 heading the page name, every other heading a label."""
    if page is None:
        return lines
    name, prefix = page
    seen: dict[str, int] = {}
    titled = False
    out = []
    for line in _setext_to_atx(lines):
        m = _HEADING.match(line)
        if not m or re.search(r"\{#[\w-]+\}\s*$", line):
            out.append(line)
            continue
        hashes, title = m.groups()
        if hashes == "#" and not titled:
            titled = True
            out.append(line if name == "index" else f"# {title} {{#{name}}}")
            continue
        slug = github_slug(title)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        if count:
            slug = f"{slug}-{count}"
        out.append(f"{hashes} {title} {{#{prefix}-{label_chars(slug)}}}")
    if not titled and name != "index":
        # No title: name the page after its folder (this shifts the lines by one).
        topic = source.resolve().parent.name if name.startswith("lesson") else source.stem
        out.insert(0, f"\\page {name} {topic.replace('_', ' ')}")
    return out


_LINK = re.compile(r"(!?)\[((?:[^\[\]\n]|\n(?![ \t]*\n))*)\]\(\s*<?([^()\s<>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*:|^//|^@ref\b|^\\ref\b")


def rewrite_links(text: str, source: Path, page: tuple[str, str] | None, keep: Protected) -> str:
    def plain(s: str) -> str:
        # Doxygen shows the text of an @ref link between quotes, verbatim.
        return keep.restore(s).replace("`", "").replace('"', "'").strip()

    def replace(m: re.Match) -> str:
        bang, label, target = m.group(1), m.group(2), m.group(3)
        if _EXTERNAL.match(target):
            return keep.put(m.group(0))
        path_part, _, anchor = target.partition("#")
        if not path_part:  # an anchor on this page
            if page is None or not anchor:
                return m.group(0)
            return keep.put(f"[{plain(label)}](@ref {page[1]}-{label_chars(anchor)})")
        resolved = (source.parent / path_part).resolve()
        try:
            rel = resolved.relative_to(ROOT)
        except ValueError:
            return keep.put(m.group(0))
        if bang:
            if resolved.parent == FIGURES:
                return keep.put(f"![{label}]({resolved.name})")
            return keep.put(m.group(0))
        target_page = page_of(resolved)
        index_page = {("lessons",): "lessons", ("docs", "notes"): "notes"}.get(rel.parts)
        if index_page and not anchor:  # the folder of the lessons or of the notes
            return keep.put(f"[{plain(label)}](@ref {index_page})")
        if target_page is not None:
            ref = f"{target_page[1]}-{label_chars(anchor)}" if anchor else target_page[0]
            return keep.put(f"[{plain(label)}](@ref {ref})")
        if resolved.suffix == ".hpp" and rel.parts[0] in ("common", "solutions", "lessons"):
            # The Markdown form ends the label cleanly ("@ref core.hpp:" would not).
            return keep.put(f"[{plain(label) or resolved.name}](@ref {resolved.name})")
        # A file the site does not carry: name it by its path in the repository.
        shown = rel.as_posix() + ("/" if resolved.is_dir() else "")
        code = keep.put(f"`{shown}`")
        text = plain(label)
        if text.rstrip("/") in (shown.rstrip("/"), resolved.name, path_part.rstrip("/")):
            return code
        return f"{label} ({code})"

    return _LINK.sub(replace, text)


_HTML_TAG = re.compile(r"</?[A-Za-z][^<>\n]*>")
_QUOTED = re.compile(r'"((?:[^"\n]|\n(?![ \t]*\n))*)"')


def curl_quotes(text: str, keep: Protected) -> str:
    """Straight double quotes to curly ones, outside code, formulas, links and tags.

    Doxygen copies text between straight quotes verbatim, so a formula, a code
    span or emphasis inside them would reach the page raw.
    """
    text = _HTML_TAG.sub(lambda m: keep.put(m.group(0)), text)
    return _QUOTED.sub("\u201c\\1\u201d", text)


_EMPHASIS = [
    (re.compile(r"(?<![*\\])\*\*(?=\S)([^\n]+?)(?<=\S)\*\*"), "b"),
    (re.compile(r"(?<![_\w\\])__(?=\S)([^\n]+?)(?<=\S)__(?![_\w])"), "b"),
    (re.compile(r"(?<![*\w\\])\*(?=[^\s*])([^*\n]+?)(?<=[^\s*])\*(?![*\w])"), "em"),
    (re.compile(r"(?<![_\w\\])_(?=[^\s_])([^_\n]+?)(?<=[^\s_])_(?![_\w])"), "em"),
]


def html_emphasis(text: str) -> str:
    """**bold** and *emphasis* (within a line) -> <b>, <em>.

    Doxygen 1.9.4 renders Markdown emphasis only when the text inside starts with
    a letter, a digit or one of a few signs; "**(B, H, T, D)**", "*(coming)*",
    "**`code`**" or emphasis around a formula reach the page with their asterisks.
    """
    for pattern, tag in _EMPHASIS:
        text = pattern.sub(lambda m: f"<{tag}>{m.group(1)}</{tag}>", text)
    return text


# ---------------------------------------------------------------------------

def filter_markdown(text: str, source: Path) -> str:
    page = page_of(source)
    keep = Protected()
    lines = protect_blocks(text.split("\n"), keep)
    lines = label_headings(lines, page, source)
    body = "\n".join(lines)
    body = protect_comments(body, keep)
    body = protect_code_spans(body, keep)
    body = convert_math(body, keep)
    body = rewrite_links(body, source, page, keep)
    body = curl_quotes(body, keep)
    body = html_emphasis(body)
    body = keep.restore(body)
    if page is not None and page[0] != "index":
        body = body.rstrip("\n") + "\n\\tableofcontents\n"
    return body


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    source = Path(sys.argv[1])
    text = source.read_text(encoding="utf-8")
    sys.stdout.write(filter_markdown(text, source))
    return 0


if __name__ == "__main__":
    sys.exit(main())
