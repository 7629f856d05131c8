"""The TODO blocks of a lesson's files, and the README and HINTS sections they point to.

A TODO body is marked `// TODO(NN.k): ...` at its start and `// END TODO(NN.k)` at its
end. In the scaffold the body is the one throw line (`throw NotImplemented("NN.k",
"<README section>");` or, in device code, `ATTN_KERNEL_TODO(...)`), optionally with
comment lines (the numbered steps of a skeleton)."""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .base import rel
from .manifest import Lesson

CODE_SUFFIXES = {".hpp", ".cpp", ".h", ".cc", ".cu", ".cuh", ".inl"}
TODO_RE = re.compile(r"^\s*//\s*TODO\((\d\d)\.(\d+)\)")
END_RE = re.compile(r"^\s*//\s*END TODO\((\d\d)\.(\d+)\)\s*$")
# The throw line of a scaffold's TODO body (ATTN_KERNEL_TODO: the same inside device code).
THROW_RE = re.compile(r'^\s*(?:throw\s+(?:::)?(?:attn::)?NotImplemented|ATTN_KERNEL_TODO)'
                      r'\(\s*"(\d\d)\.(\d+)"\s*,\s*"([^"]*)"\s*\);\s*$')
COMMENT_RE = re.compile(r"^\s*//")
# Words before a '(' that are not the name of the function being defined.
NOT_NAMES = {"__launch_bounds__", "__align__", "alignas", "decltype", "noexcept", "requires",
             "if", "for", "while", "switch", "return", "sizeof", "static_assert"}


def code_files(folder: Path) -> List[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in CODE_SUFFIXES)


@dataclass
class Todo:
    todo: str            # "01.3"
    file: Path
    line: int            # line of the TODO marker (1-based)
    marker: str          # the marker line, stripped
    body: List[str]      # lines between the markers
    function: str = ""   # the function whose body holds it ("gqa_attention", "KVCache::append")

    @property
    def where(self) -> str:
        return f"{rel(self.file)}:{self.line}"


def is_comment(line: str) -> bool:
    return bool(COMMENT_RE.match(line))


def code_lines(body: List[str]) -> List[str]:
    """The lines of a body that are neither blank nor comments."""
    return [l for l in body if l.strip() and not is_comment(l)]


def comment_lines(body: List[str]) -> List[str]:
    return [l.strip() for l in body if is_comment(l)]


def enclosing_function(lines: List[str], marker_index: int) -> str:
    """The name of the function whose body holds line `marker_index` (0-based): its
    signature runs from the nearest earlier line that starts at column 0 (and is no
    comment, directive or closing brace) down to the marker."""
    for i in range(marker_index - 1, -1, -1):
        line = lines[i]
        if not line or line[0].isspace() or line.startswith(("//", "#", "}", "/*", "*")):
            continue
        signature = " ".join(l.strip() for l in lines[i:marker_index] if not is_comment(l))
        for m in re.finditer(r"([A-Za-z_~][\w:~]*)\s*(?:<[^<>()]*>)?\s*\(", signature):
            if m[1] not in NOT_NAMES:
                return m[1][2:] if m[1].startswith("::") else m[1]
        return ""
    return ""


def parse_todos(path: Path) -> Tuple[List[Todo], List[str], List[str]]:
    """Splits a file into TODO blocks and the lines outside them (marker lines included).

    Returns (todos, outside lines, problems)."""
    todos: List[Todo] = []
    outside: List[str] = []
    problems: List[str] = []
    current: Optional[Todo] = None
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for i, line in enumerate(lines, 1):
        start, end = TODO_RE.match(line), END_RE.match(line)
        if start:
            if current:
                problems.append(f"{rel(path)}:{i}: TODO({start[1]}.{start[2]}) opens inside TODO({current.todo})")
            current = Todo(f"{start[1]}.{start[2]}", path, i, line.strip(), [], enclosing_function(lines, i - 1))
            outside.append(line)
        elif end:
            tid = f"{end[1]}.{end[2]}"
            if not current or current.todo != tid:
                problems.append(f"{rel(path)}:{i}: END TODO({tid}) without a matching TODO({tid})")
            else:
                todos.append(current)
            current = None
            outside.append(line)
        elif current:
            current.body.append(line)
        else:
            outside.append(line)
    if current:
        problems.append(f"{rel(path)}:{current.line}: TODO({current.todo}) has no END TODO({current.todo})")
    return todos, outside, problems


def todo_order(todo_id: str) -> Tuple[int, int]:
    a, b = todo_id.split(".")
    return int(a), int(b)


def lesson_todos(folder: Path) -> List[Todo]:
    """Every TODO of a lesson's files, in the order of their numbers."""
    todos: List[Todo] = []
    for f in code_files(folder):
        todos += parse_todos(f)[0]
    return sorted(todos, key=lambda t: todo_order(t.todo))


def scaffold_throw(todo: Todo) -> Optional[Tuple[str, str]]:
    """(todo id, README section) if the body is a scaffold's: one throw line, and
    otherwise only comment lines (the steps of a skeleton) and blank lines."""
    code = code_lines(todo.body)
    if len(code) == 1:
        m = THROW_RE.match(code[0])
        if m:
            return f"{m[1]}.{m[2]}", m[3]
    return None


def untouched(lesson: Lesson) -> bool:
    """True if every TODO body of the learner's lesson is still the scaffold's throw."""
    todos = lesson_todos(lesson.scaffold)
    return bool(todos) and all(scaffold_throw(t) for t in todos)


def markdown_sections(path: Path) -> Dict[str, str]:
    """`## heading` -> the text under it, up to the next `#`/`##` heading (code fences respected)."""
    sections: Dict[str, str] = {}
    heading, body, fenced = None, [], False
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        if not fenced and re.match(r"^#{1,2} ", line):
            if heading is not None:
                sections[heading] = "\n".join(body).strip("\n")
            heading = line[3:].strip() if line.startswith("## ") else None
            body = []
        elif heading is not None:
            body.append(line)
    if heading is not None:
        sections[heading] = "\n".join(body).strip("\n")
    return sections


def hint_sections(lesson: Lesson) -> Dict[str, Tuple[str, str]]:
    """TODO id -> (heading, text) of HINTS.md's `## TODO(NN.k)` sections."""
    out = {}
    if lesson.hints.exists():
        for heading, text in markdown_sections(lesson.hints).items():
            m = re.match(r"TODO\((\d\d\.\d+)\)", heading)
            if m:
                out[m[1]] = (heading, text)
    return out


def readme_title(lesson: Lesson) -> str:
    """The README's first `# ` heading without its "Lesson NN: " prefix."""
    try:
        for line in lesson.readme.read_text(encoding="utf-8").splitlines():
            if line.startswith("# "):
                return re.sub(r"^Lesson\s+\d+\s*[:.\-\u2013\u2014]?\s*", "", line[2:].strip())
    except OSError:
        pass
    return ""
