"""./learn verify: for each lesson, that its scaffold fails (every test with the lesson's
own NotImplemented, every TODO the first NotImplemented of some test), its solution
passes, every mutant is caught, its README and hints are complete and agree with the
files, and scaffold and solution differ only inside the TODO markers, within the TODO
rules of dev/rules.py."""

import concurrent.futures
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..base import BUILD, ROOT, bold, dim, fail, first_lines, green, indent, plural, red, rel, run, say, yellow
from ..build import Build, readable_build_errors, solutions_build
from ..manifest import Lesson, find_lesson, load_lessons
from ..setup import setup
from ..learner import failure_text
from ..testrun import TEST_TIMEOUT_S, Case, Failure, list_cases, run_tests
from ..todos import hint_sections, lesson_todos, markdown_sections, parse_todos, scaffold_throw
from . import rules


# --------------------------------------------------------------------------------------
# ./learn verify
# --------------------------------------------------------------------------------------

@dataclass
class Check:
    ok: bool = True
    cell: str = ""
    problems: List[str] = field(default_factory=list)

    def bad(self, problem: str) -> None:
        self.ok = False
        self.problems.append(problem)


def check_docs(lesson: Lesson, project: "rules.Project") -> Check:
    """README and HINTS exist; every TODO has a hint; every thrown section is a README heading;
    the title, the TODO table and the commands agree with the files (dev/rules.py)."""
    c = Check()
    for path in (lesson.readme, lesson.hints):
        if not path.exists():
            c.bad(f"{rel(path)} is missing")
    todos = lesson_todos(lesson.scaffold)
    if not todos:
        c.bad(f"{rel(lesson.scaffold)} has no TODO markers")
    hints = hint_sections(lesson) if lesson.hints.exists() else {}
    headings = set(markdown_sections(lesson.readme)) if lesson.readme.exists() else set()
    for t in todos:
        if lesson.hints.exists() and t.todo not in hints:
            c.bad(f"{rel(lesson.hints)} has no section '## TODO({t.todo})'")
        thrown = scaffold_throw(t)
        if thrown and lesson.readme.exists() and thrown[1] not in headings:
            c.bad(f"{rel(t.file)}:{t.line}: TODO({t.todo}) names README section \"{thrown[1]}\", "
                  f"which is not a '## ' heading of {rel(lesson.readme)}")
    for p in rules.check_title(lesson) + rules.check_table(lesson):
        c.bad(p)
    for path in (lesson.readme, lesson.hints):
        for p in rules.check_commands(path, project):
            c.bad(p)
    c.cell = "ok" if c.ok else "FAIL"
    return c


def check_markers(lesson: Lesson) -> Check:
    """Outside the TODO markers each scaffold file equals its solution, markers included;
    each scaffold TODO body is the one throw line naming its own TODO."""
    c = Check()
    if not lesson.scaffold.is_dir() or not lesson.solution.is_dir():
        c.bad(f"{rel(lesson.scaffold)} or {rel(lesson.solution)} is missing")
        c.cell = "FAIL"
        return c
    sol_files = {p.relative_to(lesson.solution) for p in lesson.solution.rglob("*") if p.is_file()}
    sca_files = {p.relative_to(lesson.scaffold) for p in lesson.scaffold.rglob("*")
                 if p.is_file() and p.suffix not in (".md", ".png", ".json")}  # text, plots, results
    for missing in sorted(sol_files - sca_files):
        c.bad(f"{rel(lesson.scaffold / missing)} is missing (it exists in solutions/)")
    for extra in sorted(sca_files - sol_files):
        c.bad(f"{rel(lesson.scaffold / extra)} has no counterpart in {rel(lesson.solution)}")
    seen: Dict[str, str] = {}
    count = 0
    for name in sorted(sol_files & sca_files):
        sca, sol = lesson.scaffold / name, lesson.solution / name
        t_sca, out_sca, p_sca = parse_todos(sca)
        t_sol, out_sol, p_sol = parse_todos(sol)
        for p in p_sca + p_sol:
            c.bad(p)
        if out_sca != out_sol:
            n = next((i for i, (a, b) in enumerate(zip(out_sca, out_sol)) if a != b), min(len(out_sca), len(out_sol)))
            a = out_sca[n] if n < len(out_sca) else "(end of file)"
            b = out_sol[n] if n < len(out_sol) else "(end of file)"
            c.bad(f"{rel(sca)} differs from {rel(sol)} outside the TODO markers:\n"
                  f"      scaffold: {a.strip()}\n      solution: {b.strip()}")
        for t in t_sca:
            count += 1
            if not t.todo.startswith(lesson.nn + "."):
                c.bad(f"{rel(sca)}:{t.line}: TODO({t.todo}) in lesson {lesson.nn}")
            if t.todo in seen:
                c.bad(f"{rel(sca)}:{t.line}: TODO({t.todo}) also at {seen[t.todo]}")
            seen[t.todo] = f"{rel(sca)}:{t.line}"
            thrown = scaffold_throw(t)
            for p in rules.check_skeleton(t, next((x for x in t_sol if x.todo == t.todo), None)):
                c.bad(p)
            if thrown and thrown[0] != t.todo:
                c.bad(f"{rel(sca)}:{t.line}: TODO({t.todo}) throws NotImplemented(\"{thrown[0]}\", ...)")
    for p in rules.check_size(lesson):
        c.bad(p)
    sizes = rules.todo_sizes(lesson)
    largest = max((n for _, n in sizes), default=0)
    c.cell = f"ok ({count} TODOs, <= {largest} lines)" if c.ok else "FAIL"
    return c


# The scaffold build takes the other lessons from this copy of solutions/ (made at the
# start of ./learn verify), not from solutions/ itself, where the mutants are applied in
# turn while the scaffolds build.
SOLUTIONS_COPY = BUILD / "verify" / "solutions-copy" / "solutions"


def check_scaffold(lesson: Lesson, lessons: List[Lesson]) -> Check:
    """Lesson NN from lessons/, the others from (a copy of) solutions/: every test fails with
    NotImplemented."""
    c = Check()
    defs = {"ATTN_TREE": "solutions", "ATTN_WERROR": "OFF", "ATTN_SOLUTIONS_ROOT": str(SOLUTIONS_COPY)}
    defs.update({f"ATTN_TREE_{l.nn}": "lessons" if l.nn == lesson.nn else "solutions" for l in lessons})
    build = Build("verify/scaffold", "solutions", defs)
    if not build.configure(quiet=True):
        c.bad("CMake could not configure build/verify/scaffold")
        c.cell = "FAIL"
        return c
    ok, output = build.build(lesson.target)
    if not ok:
        c.bad(f"the scaffold does not compile:\n{indent(readable_build_errors(output), '      ')}")
        c.cell = "no build"
        return c
    r = run_tests(build.exe(lesson))
    if r.problem:
        c.bad(f"scaffold run: {r.problem}")
    if not r.cases:
        c.bad("the lesson has no test cases")
    good = 0
    reached: Dict[str, str] = {}   # TODO id -> the first test whose first NotImplemented it is
    for case in r.cases:
        if ";" in case.name:
            c.bad(f"\"{case.name}\" ({case.where}): CTest cuts a test name at ';' into two tests that "
                  f"match nothing and pass: rename it without ';'")
        ni = case.not_implemented()
        if ni and ni.todo.startswith(lesson.nn + "."):
            reached.setdefault(ni.todo, case.name)
        if case.state == "passed":
            c.bad(f"\"{case.name}\" ({case.where}) passes on the scaffold: it cannot fail")
        elif case.state == "not run":
            c.bad(f"\"{case.name}\" did not run on the scaffold")
        elif any(f.crash for f in case.failures):
            c.bad(f"\"{case.name}\" crashes on the scaffold: {case.failures[0].text.splitlines()[0]}")
        else:
            wrong = [f for f in case.failures if not (f.todo and f.todo.startswith(lesson.nn + "."))]
            if wrong:
                c.bad(f"\"{case.name}\" ({case.where}) fails on the scaffold without lesson {lesson.nn}'s "
                      f"NotImplemented:\n{indent(first_lines(wrong[0].text), '      ')}")
            else:
                good += 1
    if r.cases and not r.problem:
        for t in lesson_todos(lesson.scaffold):
            if t.todo not in reached and t.todo not in rules.REACH_ALLOWED:
                c.bad(f"{t.where}: rule 'reach': TODO({t.todo}) ({t.function}) is the first NotImplemented of no "
                      f"test, so finishing it changes no test result before the next TODO; give it a test "
                      f"that reaches it first")
    c.cell = f"{good}/{r.total} NI" if r.total else "FAIL"
    return c


def check_solution(lesson: Lesson, lessons: List[Lesson], ctest: Optional[Dict[str, List[Case]]] = None) -> Check:
    """The solution passes every test. `ctest`: the results of the ctest run that ./learn
    check has just made, by lesson (the executables are not run again)."""
    c = Check()
    if ctest is not None:
        cases = ctest.get(lesson.nn, [])
        if not cases:
            c.bad(f"the ctest run has no test of lesson {lesson.nn} (label lesson{lesson.nn})")
        # Every test case of the executable must have run under CTest by its own name (a name
        # CTest cuts in two would run nothing and pass). CTest may hold more (README numbers).
        listed = list_cases(solutions_build(lessons).exe(lesson)) or []
        names = {x.name for x in cases}
        unrun = [x.name for x in listed if x.name not in names]
        if unrun:
            c.bad(f"{plural(len(unrun), 'test case')} of the executable did not run under CTest by its name "
                  f"(a name CTest does not register as written?): " + "; ".join(f'"{n}"' for n in unrun[:3]))
        for case in cases:
            if case.state != "passed":
                c.bad(f"\"{case.name}\" fails on the solution (ctest):\n{indent(first_lines(failure_text(case)), '      ')}")
        c.cell = f"{sum(x.state == 'passed' for x in cases)}/{len(cases)} pass"
        return c
    build = solutions_build(lessons)
    if not build.configure(quiet=True):
        c.bad("CMake could not configure build/solutions")
        c.cell = "FAIL"
        return c
    ok, output = build.build(lesson.target)
    if not ok:
        c.bad(f"the solution does not compile:\n{indent(readable_build_errors(output), '      ')}")
        c.cell = "no build"
        return c
    r = run_tests(build.exe(lesson))
    if r.problem:
        c.bad(f"solution run: {r.problem}")
    for case in r.cases:
        if case.state != "passed":
            c.bad(f"\"{case.name}\" fails on the solution ({case.where}):\n{indent(first_lines(failure_text(case)), '      ')}")
    if not r.cases:
        c.bad("the lesson has no test cases")
    c.cell = f"{r.passed}/{r.total} pass"
    return c


def sync_tree(src: Path, dst: Path) -> None:
    """Makes dst a copy of src, rewriting only files whose content differs (so that an
    unchanged file keeps its time stamp and is not rebuilt)."""
    dst.mkdir(parents=True, exist_ok=True)
    want = {p.relative_to(src) for p in src.rglob("*") if p.is_file()}
    for p in sorted(dst.rglob("*"), reverse=True):
        r = p.relative_to(dst)
        if p.is_file() and r not in want:
            p.unlink()
        elif p.is_dir() and not any(p.iterdir()):
            p.rmdir()
    for r in sorted(want):
        s, d = src / r, dst / r
        data = s.read_bytes()
        if not d.exists() or d.read_bytes() != data:
            d.parent.mkdir(parents=True, exist_ok=True)
            d.write_bytes(data)


def patch_notes(path: Path) -> Tuple[str, str, List[str]]:
    """(Mistake, Caught by, files the patch touches)."""
    text = path.read_text(errors="replace")
    head = text.split("\n---", 1)[0]
    mistake = re.search(r"^Mistake:\s*(.*)$", head, re.M)
    caught = re.search(r"^Caught by:\s*(.*)$", head, re.M)
    files = re.findall(r"^\+\+\+ (\S+)", text, re.M)
    files = [f[2:] if f.startswith("b/") else f for f in files]
    return (mistake[1].strip() if mistake else "", caught[1].strip().strip('"') if caught else "", files)


# A mutant is applied to solutions/ itself and built in build/solutions, the folder
# ./learn check has just built and tested: only the patched file is compiled again, and
# nothing else of the lesson (a separate folder would compile the lesson's tests and
# every library again, which was most of verify's time). The original bytes of every file
# a patch touches are kept in MUTANT_BACKUP while it is applied, so that a run stopped
# half-way (Ctrl-C, a killed process) is undone by the next ./learn verify or ./learn check.
MUTANT_BACKUP = BUILD / "verify" / "mutant-backup"


def restore_mutant_backup() -> List[str]:
    """Puts back the files a stopped verify run left patched; returns their paths."""
    index = MUTANT_BACKUP / "index.txt"
    if not index.exists():
        return []
    restored = []
    for line in index.read_text().splitlines():
        if not line.strip():
            continue
        path = ROOT / line
        saved = MUTANT_BACKUP / "files" / line
        if saved.exists():
            if not path.exists() or path.read_bytes() != saved.read_bytes():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(saved.read_bytes())
                restored.append(line)
        elif path.exists():        # a file the patch created
            path.unlink()
            restored.append(line)
    shutil.rmtree(MUTANT_BACKUP, ignore_errors=True)
    return restored


class AppliedMutant:
    """`with AppliedMutant(patch, files):` applies a patch to the repository and restores
    every file it names afterwards, whatever happens in between (see MUTANT_BACKUP)."""

    def __init__(self, patch: Path, files: List[str]):
        self.patch, self.files = patch, files
        self.saved: Dict[str, Optional[bytes]] = {}

    def __enter__(self) -> "AppliedMutant":
        shutil.rmtree(MUTANT_BACKUP, ignore_errors=True)
        for f in self.files:
            path = ROOT / f
            self.saved[f] = path.read_bytes() if path.exists() else None
            if self.saved[f] is not None:
                keep = MUTANT_BACKUP / "files" / f
                keep.parent.mkdir(parents=True, exist_ok=True)
                keep.write_bytes(self.saved[f])
        MUTANT_BACKUP.mkdir(parents=True, exist_ok=True)
        (MUTANT_BACKUP / "index.txt").write_text("".join(f + "\n" for f in self.files))
        return self

    def apply(self) -> Tuple[bool, str]:
        r = run(["patch", "-p1", "--batch", "--forward", "--fuzz=0", "--no-backup-if-mismatch",
                 "--reject-file=-", "-d", str(ROOT), "-i", str(self.patch)])
        return r.returncode == 0, r.stdout

    def __exit__(self, *exc) -> None:
        for f, data in self.saved.items():
            path = ROOT / f
            if data is None:
                if path.exists():
                    path.unlink()
            elif not path.exists() or path.read_bytes() != data:
                path.write_bytes(data)
        shutil.rmtree(MUTANT_BACKUP, ignore_errors=True)


def run_named_test(exe: Path, name: str, timeout: float = TEST_TIMEOUT_S) -> Optional[bool]:
    """Runs the one test case called `name`: True when it fails or crashes, False when it
    passes, None when the executable has no test of that name."""
    pattern = name.replace("\\", "\\\\").replace(",", "\\,")   # doctest's escapes in a filter
    cmd = [str(exe), f"--test-case={pattern}", "--no-intro", "--abort-after=1", "--no-colors"]
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                           text=True, errors="replace", timeout=timeout, cwd=exe.parent)
    except subprocess.TimeoutExpired:
        return True                  # an endless loop is caught as surely as a wrong number
    m = re.search(r"test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed", r.stdout)
    if r.returncode < 0 or r.returncode > 128 or m is None:
        return True                  # crashed (no summary): the mutant is caught
    if int(m[1]) == 0:
        return None
    return r.returncode != 0 or int(m[3]) > 0


def check_mutants(lesson: Lesson, lessons: List[Lesson]) -> Check:
    """Each mutant, applied to solutions/ and built in build/solutions, makes a test of the
    lesson fail: first the test its `Caught by:` line names is run alone; only when that
    one passes (or does not exist) does the whole lesson run."""
    c = Check()
    patches = sorted((lesson.tests / "mutants").glob("*.patch"))
    if not patches:
        c.bad(f"no mutants: {rel(lesson.tests / 'mutants')}/*.patch")
        c.cell = "none"
        return c
    build = solutions_build(lessons)
    if not build.configure(quiet=True):
        c.bad("CMake could not configure build/solutions")
        c.cell = "FAIL"
        return c
    ok, output = build.build(lesson.target)
    if not ok:
        c.bad(f"the solution does not compile:\n{indent(readable_build_errors(output), '      ')}")
        c.cell = "no build"
        return c
    killed = 0
    try:
        for patch in patches:
            mistake, caught_by, files = patch_notes(patch)
            label = patch.name
            outside = [f for f in files if not f.startswith(f"solutions/{lesson.name}/")]
            if not files or outside:
                c.bad(f"{label}: must change files under solutions/{lesson.name}/ only (it names {', '.join(files) or 'none'})")
                continue
            with AppliedMutant(patch, files) as m:
                ok, text = m.apply()
                if not ok:
                    c.bad(f"{label}: does not apply to solutions/ (patch -p1):\n{indent(text.strip(), '      ')}")
                    continue
                ok, output = build.build(lesson.target)
                if not ok:
                    c.bad(f"{label}: the mutant does not compile (build/solutions, warnings are errors there):\n"
                          f"{indent(readable_build_errors(output), '      ')}")
                    continue
                exe = build.exe(lesson)
                named = run_named_test(exe, caught_by) if caught_by else None
                if named:
                    killed += 1
                    continue
                # The first failed check is enough: the lesson's later tests (lesson 07 runs a
                # real model) need not run once the mutant is caught.
                result = run_tests(exe, extra=("--abort-after=1",))
                failed = [x for x in result.cases if x.state not in ("passed", "not run")]
                if not failed and not result.problem:
                    c.bad(f"{label}: every test passes with this mutant ({mistake or 'no Mistake: line'}): "
                          f"the tests do not catch it")
                    continue
                killed += 1
                where = (f"'Caught by: {caught_by}' passes" if named is False
                         else f"no test is named '{caught_by}'" if caught_by else "it has no 'Caught by:' line")
                c.bad(f"{label}: {where}; the mutant is caught by \"{failed[0].name if failed else result.problem}\": "
                      f"name that test in its 'Caught by:' line")
    finally:
        # build/solutions holds the solution again, for whatever runs after verify.
        ok, output = build.build(lesson.target)
        if not ok:
            c.bad(f"the solution does not build again after the mutants:\n{indent(readable_build_errors(output), '      ')}")
    c.cell = f"{killed}/{len(patches)} caught"
    return c


def cmd_verify(only: Optional[List[str]] = None, ctest: Optional[Dict[str, List[Case]]] = None) -> int:
    setup()
    lessons = load_lessons()
    if not lessons:
        fail("no lessons found")
    chosen = [find_lesson(lessons, a) for a in only] if only else lessons
    t0 = time.time()
    columns = ["scaffold", "solution", "mutants", "readme+hints", "markers"]
    table: List[Tuple[Lesson, Dict[str, Check]]] = []
    say(bold("verify: ") + f"{plural(len(chosen), 'lesson')}: " + ", ".join(l.name for l in chosen))
    if rules.SIZE_ALLOWED:
        say(dim(f"  allowed above {rules.MAX_TODO_LINES} lines until they are split (dev/rules.py SIZE_ALLOWED): "
                + ", ".join(f"{t} ({why})" for t, why in sorted(rules.SIZE_ALLOWED.items()))))
    if rules.REACH_ALLOWED:
        say(dim("  allowed to be reached through a later TODO until they are split (dev/rules.py REACH_ALLOWED): "
                + ", ".join(f"{t} ({why})" for t, why in sorted(rules.REACH_ALLOWED.items()))))
    project = rules.Project(lessons)

    def timed_call(fn) -> Tuple[Check, float]:
        t = time.time()
        return fn(), time.time() - t

    repo = Check()
    for p in rules.check_lesson_map(lessons):
        repo.bad(p)
    for doc in [ROOT / "README.md"] + sorted((ROOT / "common").glob("*/README.md")) + sorted((ROOT / "docs").glob("**/*.md")):
        for p in rules.check_commands(doc, project):
            repo.bad(p)
    say(f"  {green('ok  ') if repo.ok else red('FAIL')} README.md's lesson map and the commands of README.md, common/ and docs/")
    for path in restore_mutant_backup():
        say(yellow(f"  restored {path}, which a stopped verify run had left with a mutant applied"))
    # The checks that read the files come first, before any mutant is applied to solutions/.
    read = {(l.nn, name): timed_call(fn) for l in chosen
            for name, fn in (("readme+hints", lambda l=l: check_docs(l, project)),
                             ("markers", lambda l=l: check_markers(l)))}
    # Two lines of work run side by side (each is mostly one compiler or one test process,
    # and a machine has at least two cores): the scaffolds, built in build/verify/scaffold
    # from lessons/ with every other lesson from a copy of solutions/; and the solutions
    # and their mutants, in build/solutions, where each mutant is applied to solutions/ in
    # turn (which is why the scaffold build reads a copy).
    sync_tree(ROOT / "solutions", SOLUTIONS_COPY)
    line_s = concurrent.futures.ThreadPoolExecutor(max_workers=1)   # the scaffolds
    line_m = concurrent.futures.ThreadPoolExecutor(max_workers=1)   # the solutions and mutants
    try:
        started = {}
        for l in chosen:
            started[l.nn, "scaffold"] = line_s.submit(timed_call, lambda l=l: check_scaffold(l, lessons))
            started[l.nn, "solution"] = line_m.submit(timed_call, lambda l=l: check_solution(l, lessons, ctest))
            started[l.nn, "mutants"] = line_m.submit(timed_call, lambda l=l: check_mutants(l, lessons))
        for lesson in chosen:
            checks: Dict[str, Check] = {}
            for name in ("readme+hints", "markers", "scaffold", "solution", "mutants"):
                got = read.get((lesson.nn, name)) or started[lesson.nn, name].result()
                checks[name], secs = got
                mark = green("ok  ") if checks[name].ok else red("FAIL")
                say(f"  {mark} {lesson.nn} {name:<13} {checks[name].cell:<16} {dim(f'{secs:.0f} s')}")
            table.append((lesson, checks))
    finally:
        for line in (line_s, line_m):
            line.shutdown(cancel_futures=True)
    say()
    name_w = max(len(l.name) for l, _ in table)
    say(bold("lesson".ljust(name_w)) + "  " + "  ".join(bold(c.ljust(14)) for c in columns))
    for lesson, checks in table:
        cells = []
        for col in columns:
            ch = checks[col]
            cells.append((green if ch.ok else red)(ch.cell.ljust(14)))
        say(lesson.name.ljust(name_w) + "  " + "  ".join(cells))
    problems = [(l, col, p) for l, checks in table for col in columns for p in checks[col].problems]
    problems = [(None, "repository", p) for p in repo.problems] + problems
    say()
    if problems:
        say(red(bold(f"verify failed: {plural(len(problems), 'problem')}")))
        for lesson, col, p in problems:
            say(f"  {lesson.nn if lesson else '--'} {col}: {p}")
        say(dim(f"({time.time() - t0:.0f} s)"))
        return 1
    say(green(bold("verify passed")) + dim(f" ({time.time() - t0:.0f} s)"))
    return 0


