"""The rules ./learn verify enforces on a lesson's files, apart from running anything:

- size:     a TODO body in the solution has at most MAX_TODO_LINES lines that are
            neither blank nor comments;
- skeleton: a scaffold's TODO body is its throw line plus comment lines only, and those
            comments (the numbered steps) appear in the solution's body in the same order;
- table:    the README's TODO table lists exactly the scaffold's TODOs, in order, each
            with the name of the function that holds it;
- commands: every command a README shows names presets, targets, labels, paths and
            ./learn arguments that exist, and one that tests the reference says so;
- map:      README.md's lesson map and each lesson README's title agree with
            lessons/manifest.json.
Each function returns a list of problems, each naming the file and the rule."""

import json
import re
import shlex
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

from ..base import ROOT, rel
from ..manifest import Lesson
from ..todos import (THROW_RE, Todo, code_lines, comment_lines, lesson_todos, parse_todos, readme_title,
                     scaffold_throw)

MAX_TODO_LINES = 25

# TODOs that may stay above MAX_TODO_LINES until they are split (issue "The big TODOs
# split into small tested steps"); verify prints this list in every run. Empty it, do
# not grow it.
SIZE_ALLOWED: Dict[str, str] = {}
# TODOs that the split of their lesson will make reachable (their kernel, a later TODO,
# throws first today); the same issue empties this list, printed in every run too.
REACH_ALLOWED: Dict[str, str] = {}


# --------------------------------------------------------------------------------------
# TODO size and skeletons
# --------------------------------------------------------------------------------------

def todo_sizes(lesson: Lesson) -> List[Tuple[Todo, int]]:
    return [(t, len(code_lines(t.body))) for t in lesson_todos(lesson.solution)]


def check_size(lesson: Lesson) -> List[str]:
    problems = []
    for t, n in todo_sizes(lesson):
        if n > MAX_TODO_LINES and t.todo not in SIZE_ALLOWED:
            problems.append(f"{t.where}: rule 'TODO size': the solution's body of TODO({t.todo}) "
                            f"({t.function}) has {n} lines of code (not blank, not comments); at most "
                            f"{MAX_TODO_LINES}: split it into named functions, each its own TODO")
    return problems


def check_skeleton(scaffold: Todo, solution: Optional[Todo]) -> List[str]:
    """The scaffold's body: one throw line and comments; its comments in the solution, in order."""
    problems = []
    if scaffold_throw(scaffold) is None:
        code = code_lines(scaffold.body)
        other = [l.strip() for l in code if not THROW_RE.match(l)]
        what = f"the code line '{other[0]}'" if other else (
            "no throw line" if not code else f"{len(code)} throw lines")
        problems.append(
            f"{scaffold.where}: rule 'skeleton': the scaffold's body of TODO({scaffold.todo}) has {what}; it must be "
            f"the one line 'throw NotImplemented(\"{scaffold.todo}\", \"<README section>\");' (in device code "
            f"'ATTN_KERNEL_TODO(\"{scaffold.todo}\", \"<README section>\");') and otherwise only comment lines")
    if solution is None:
        return problems
    steps = comment_lines(scaffold.body)
    have = comment_lines(solution.body)
    i = 0
    for step in steps:
        while i < len(have) and have[i] != step:
            i += 1
        if i == len(have):
            problems.append(f"{scaffold.where}: rule 'skeleton': the step comment '{step}' of TODO({scaffold.todo}) "
                            f"is not in the solution's body ({solution.where})"
                            + (" in the same order" if step in have else ""))
            break
        i += 1
    return problems


# --------------------------------------------------------------------------------------
# The README's TODO table
# --------------------------------------------------------------------------------------

TABLE_ROW_RE = re.compile(r"^\|\s*(\d\d\.\d+)\s*\|(.*)\|\s*$")
NUMBER_WORDS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven "
                                             "twelve thirteen fourteen fifteen sixteen seventeen eighteen "
                                             "nineteen twenty".split())}


def _names_in(row: str) -> Set[str]:
    names = set()
    for span in re.findall(r"`([^`]+)`", row):
        m = re.match(r"\s*([A-Za-z_~][\w:~]*)", span)
        if m:
            names.add(m[1])
    return names


def check_table(lesson: Lesson) -> List[str]:
    readme = lesson.readme
    if not readme.exists():
        return []
    todos = lesson_todos(lesson.scaffold)
    rows: List[Tuple[int, str, str]] = []
    fenced = False
    text = readme.read_text(encoding="utf-8", errors="replace")
    for i, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        m = TABLE_ROW_RE.match(line)
        if m and not fenced:
            rows.append((i, m[1], m[2]))
    where = rel(readme)
    problems = []
    want = [t.todo for t in todos]
    got = [r[1] for r in rows]
    if not rows:
        return [f"{where}: rule 'TODO table': no table row '| {lesson.nn}.k | `function(...)` | ... |'; "
                f"the scaffold has {', '.join(want)}"]
    if got != want:
        missing = [t for t in want if t not in got]
        extra = [t for t in got if t not in want]
        detail = []
        if missing:
            detail.append("missing " + ", ".join(missing))
        if extra:
            detail.append("not in the scaffold " + ", ".join(extra))
        if not detail:
            detail.append("in another order")
        problems.append(f"{where}:{rows[0][0]}: rule 'TODO table': the table lists {', '.join(got)}; the scaffold's "
                        f"TODOs are {', '.join(want)} ({'; '.join(detail)})")
    by_id = {t.todo: t for t in todos}
    for line, tid, row in rows:
        t = by_id.get(tid)
        if t is None or not t.function:
            continue
        names = _names_in(row)
        short = t.function.split("::")[-1]
        if not names & {t.function, short}:
            problems.append(f"{where}:{line}: rule 'TODO table': the row of {tid} does not name `{t.function}`, "
                            f"the function that holds TODO({tid}) ({t.where})")
    for m in re.finditer(r"\b(?:write|fill in|complete)\s+(\w+)\s+(?:bodies|functions|TODOs|kernels)\b", text, re.I):
        n = NUMBER_WORDS.get(m[1].lower(), int(m[1]) if m[1].isdigit() else None)
        if n is not None and n != len(todos):
            line = text[:m.start()].count("\n") + 1
            problems.append(f"{where}:{line}: rule 'TODO table': \"{m[0]}\", but the scaffold has "
                            f"{len(todos)} TODOs")
    return problems


# --------------------------------------------------------------------------------------
# Commands shown in Markdown
# --------------------------------------------------------------------------------------

COMMAND_START = re.compile(r"^(?:[A-Z_]+=\S+\s+)*(\./learn|cmake|ctest|python3|bash|tools/|benchmarks/)")
REPO_PATH = re.compile(r"^(lessons|solutions|tests|common|docs|tools|benchmarks|cmake)/")


class Project:
    """What commands may name: presets, targets, labels (from the CMake files)."""

    def __init__(self, lessons: List[Lesson]):
        self.lessons = lessons
        presets = json.loads((ROOT / "CMakePresets.json").read_text())
        self.presets = {kind: {p["name"] for p in presets.get(kind, []) if not p.get("hidden")}
                        for kind in ("configurePresets", "buildPresets", "testPresets")}
        self.targets: Set[str] = {f"test_{l.folder}" for l in lessons} | {"all", "clean"}
        self.labels: Set[str] = {f"lesson{l.nn}" for l in lessons}
        for f in list(ROOT.glob("**/CMakeLists.txt")) + list(ROOT.glob("**/*.cmake")):
            if "build" in f.relative_to(ROOT).parts[:1]:
                continue
            text = f.read_text(errors="replace")
            self.targets |= set(re.findall(r"(?:add_executable|add_custom_target|add_library|"
                                           r"attn_cuda_compile_check)\(\s*([A-Za-z0-9_]+)", text))
            for group in re.findall(r'LABELS\s+"?([A-Za-z0-9_;]+)', text):
                self.labels |= set(group.split(";"))


def _commands(text: str) -> List[Tuple[int, str, str]]:
    """(line, command, its paragraph) for each command in code spans and code blocks."""
    out = []
    lines = text.splitlines()
    paragraph_start = 0
    fenced, fence_para = False, ""
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("```", "~~~")):
            if not fenced:
                # The prose just before a block says what the block does.
                j = i - 1
                while j >= 0 and not lines[j].strip():
                    j -= 1
                k = j
                while k >= 0 and lines[k].strip():
                    k -= 1
                fence_para = "\n".join(lines[k + 1:j + 1])
            fenced = not fenced
            continue
        if fenced:
            cmd = line.strip()
            if COMMAND_START.match(cmd):
                out.append((i + 1, re.sub(r"\s+#.*$", "", cmd), fence_para + "\n" + line))
            continue
        if not line.strip():
            paragraph_start = i + 1
            continue
        for span in re.findall(r"`([^`]+)`", line):
            if COMMAND_START.match(span.strip()):
                j = i
                while j + 1 < len(lines) and lines[j + 1].strip():
                    j += 1
                out.append((i + 1, span.strip(), "\n".join(lines[paragraph_start:j + 1])))
    return out


def _learn_problem(args: List[str], project: Project) -> Optional[str]:
    from ..cli import validate   # the runner's own parser says what it accepts
    return validate(args, [l.nn for l in project.lessons])


def _check_command(cmd: str, paragraph: str, project: Project) -> List[str]:
    problems = []
    for part in re.split(r"\s*(?:&&|\|\||;|\|)\s*", cmd):
        try:
            words = shlex.split(part)
        except ValueError:
            words = part.split()
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
            words = words[1:]
        if not words:
            continue
        placeholder = any("<" in w or re.search(r"NN|\[", w) for w in words)
        head = words[0]
        if head == "./learn":
            if not placeholder:
                p = _learn_problem(words[1:], project)
                if p:
                    problems.append(f"'{part}': {p}")
        elif head in ("cmake", "ctest"):
            kind = "testPresets" if head == "ctest" else ("buildPresets" if "--build" in words else "configurePresets")
            for flag, value in zip(words, words[1:]):
                if flag == "--preset" and value not in project.presets[kind]:
                    problems.append(f"'{part}': no {kind[:-7]} preset '{value}' in CMakePresets.json "
                                    f"(there are: {', '.join(sorted(project.presets[kind]))})")
                if flag == "--target" and not placeholder:
                    for target in value.split(","):
                        if target not in project.targets:
                            problems.append(f"'{part}': no CMake target '{target}'")
                if flag == "-L" and value not in project.labels:
                    problems.append(f"'{part}': no CTest label '{value}'")
        for w in words[1:] if head in ("./learn", "cmake", "ctest") else words:
            w = w.rstrip(".,:;)")
            if REPO_PATH.match(w) and not placeholder and "*" not in w and not (ROOT / w).exists():
                problems.append(f"'{part}': the path {w} does not exist")
    reference = re.search(r"--preset[= ]solutions|--solutions\b|ATTN_TREE=solutions|build/solutions", cmd)
    if reference and not re.search(r"\breference\b", paragraph, re.I):
        problems.append(f"'{cmd}' tests the reference (solutions/), but its paragraph does not say so; "
                        f"the learner's code is tested with ./learn NN (or --preset lessons)")
    return problems


def check_commands(path: Path, project: Project) -> List[str]:
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    return [f"{rel(path)}:{line}: rule 'commands': {p}"
            for line, cmd, para in _commands(text) for p in _check_command(cmd, para, project)]


# --------------------------------------------------------------------------------------
# The lesson map of README.md and the lessons' titles
# --------------------------------------------------------------------------------------

MAP_ROW_RE = re.compile(r"^\|\s*(\d\d)\s*\|\s*\[([^\]]*)\]\(([^)]*)\)\s*\|")


def check_title(lesson: Lesson) -> List[str]:
    if not lesson.readme.exists():
        return []
    title = readme_title(lesson)
    if title != lesson.title:
        return [f"{rel(lesson.readme)}:1: rule 'manifest': the title is '{title}', lessons/manifest.json says "
                f"'{lesson.title}' (the first line must be '# Lesson {lesson.nn}: {lesson.title}')"]
    return []


def check_lesson_map(lessons: List[Lesson]) -> List[str]:
    readme = ROOT / "README.md"
    rows = []
    for i, line in enumerate(readme.read_text(encoding="utf-8").splitlines(), 1):
        m = MAP_ROW_RE.match(line)
        if m:
            rows.append((i, m[1], m[2].strip(), m[3].strip()))
    where = rel(readme)
    if not rows:
        return [f"{where}: rule 'manifest': no lesson map (rows '| NN | [title](lessons/NN_topic/README.md) | ...')"]
    problems = []
    got, want = [r[1] for r in rows], [l.nn for l in lessons]
    if got != want:
        problems.append(f"{where}:{rows[0][0]}: rule 'manifest': the lesson map lists {', '.join(got)}; "
                        f"lessons/manifest.json has {', '.join(want)}")
    by_nn = {l.nn: l for l in lessons}
    for line, nn, title, link in rows:
        l = by_nn.get(nn)
        if l is None:
            continue
        if title != l.title:
            problems.append(f"{where}:{line}: rule 'manifest': lesson {nn} is called '{title}' in the map, "
                            f"'{l.title}' in lessons/manifest.json")
        if link != f"lessons/{l.folder}/README.md":
            problems.append(f"{where}:{line}: rule 'manifest': lesson {nn} links to {link}, expected "
                            f"lessons/{l.folder}/README.md")
    return problems
