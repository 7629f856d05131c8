"""What ./learn does for the learner: the progress table, one lesson's tests, hints,
watch mode and the demo. Lesson NN's tests are built with lesson NN from lessons/ and
each lesson it uses (lessons/manifest.json) from lessons/ if that lesson is done, else
from solutions/, so that an unfinished lesson never blocks the next one."""

import hashlib
import json
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .base import (ROOT, STATE_FILE, Style, bold, dim, fail, green, indent, join_and, notice, plural,
                   red, rel, say, yellow)
from .build import (Build, cuda_target, highlight, learner_build, learner_warnings, readable_build_errors,
                    solutions_build)
from .manifest import Lesson, find_lesson, lesson_range, load_lessons
from .setup import fetch_model, setup
from .testrun import NOT_IMPLEMENTED, Case, TestRun, run_tests
from .textmath import math_to_text
from .todos import code_files, hint_sections, lesson_todos, scaffold_throw, todo_order, untouched


# --------------------------------------------------------------------------------------
# Lesson status for the learner
# --------------------------------------------------------------------------------------

@dataclass
class Outcome:
    lesson: Lesson
    status: str                      # done, failing, not started, does not compile
    passed: int = 0
    total: int = 0
    run: Optional[TestRun] = None
    build_output: str = ""
    from_solutions: List[str] = field(default_factory=list)   # earlier lessons taken from solutions/
    evaluated: bool = True           # False: known without building (untouched scaffold)
    first: Optional[dict] = None     # first failing test (stored form)
    skipped: int = 0                 # passed tests that checked nothing (e.g. the model was absent)

    @property
    def done(self) -> bool: return self.status == "done"


class State:
    """.learn/progress.json: last outcome per lesson and the TODO each test last reached."""

    def __init__(self):
        try:
            self.data = json.loads(STATE_FILE.read_text())
        except (OSError, ValueError):
            self.data = {}
        self.data.setdefault("lessons", {})
        self.data.setdefault("test_todo", {})

    def save(self) -> None:
        STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
        tmp = STATE_FILE.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        tmp.replace(STATE_FILE)

    def record(self, o: Outcome, key: str) -> None:
        self.data["lessons"][o.lesson.nn] = {
            "status": o.status, "passed": o.passed, "total": o.total, "key": key, "skipped": o.skipped,
            "from_solutions": o.from_solutions, "first_failure": o.first,
            "time": time.strftime("%Y-%m-%d %H:%M:%S")}
        if o.run:
            seen = self.data["test_todo"].setdefault(o.lesson.nn, {})
            for c in o.run.cases:
                ni = c.not_implemented()
                if ni and ni.todo.startswith(o.lesson.nn + "."):
                    seen[c.name] = [ni.todo, ni.section]

    def cached(self, lesson: Lesson, key: str) -> Optional[dict]:
        rec = self.data["lessons"].get(lesson.nn)
        return rec if rec and rec.get("key") == key else None

    def todo_of(self, lesson: Lesson, test: str) -> Optional[Tuple[str, Optional[str]]]:
        v = self.data["test_todo"].get(lesson.nn, {}).get(test)
        return (v[0], v[1]) if v else None


def tree_key(lesson: Lesson, lessons: List[Lesson], from_solutions: List[str], solutions: bool) -> str:
    """A hash of everything lesson NN's test result depends on."""
    h = hashlib.sha256()
    paths = [ROOT / "CMakeLists.txt", ROOT / "CMakePresets.json"]
    for folder in (ROOT / "common", ROOT / "cmake", lesson.tests, ROOT / "tests" / "fixtures"):
        if folder.is_dir():
            paths += sorted(p for p in folder.rglob("*") if p.is_file() and "mutants" not in p.parts)
    paths.append(ROOT / "lessons" / "manifest.json")
    for other in lessons:
        if other.nn in lesson.uses:
            paths += code_files(other.solution if solutions or other.nn in from_solutions else other.scaffold)
    paths += code_files(lesson.solution if solutions else lesson.scaffold)
    for p in paths:
        if p.exists():
            h.update(rel(p).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:20]


def failure_text(case: Case, most: int = 3) -> str:
    """The NotImplemented message of a test, else its first few failed checks."""
    ni = case.not_implemented()
    if ni:
        return ni.text
    # Every failed message check is shown whole (expected and given message); of the
    # other checks, the first few.
    shown = [f for f in case.failures if f.message_check]
    shown += [f for f in case.failures if not f.message_check][:max(most - len(shown), 1)]
    shown = [f for f in case.failures if f in shown]
    text = "\n".join(f.text for f in shown) or case.summary()
    if len(case.failures) > len(shown):
        text += f"\n... and {plural(len(case.failures) - len(shown), 'more failed check')} in this test"
    return text


def stored_failure(case: Case, lesson: Lesson, state: Optional[State]) -> dict:
    ni = case.not_implemented()
    text = failure_text(case)
    todo, section = (ni.todo, ni.section) if ni else (None, None)
    if not ni and state:
        known = state.todo_of(lesson, case.name)
        if known:
            todo, section = known
    return {"name": case.name, "where": case.where, "text": text, "todo": todo, "section": section}


def evaluate(lesson: Lesson, lessons: List[Lesson], from_solutions: List[str], solutions: bool,
             state: Optional[State], quiet: bool = False) -> Outcome:
    """Builds and runs one lesson's tests; earlier lessons in from_solutions come from solutions/."""
    gpu = cuda_target() == "gpu"
    build = solutions_build(lessons, gpu) if solutions else learner_build(lessons, from_solutions, gpu)
    if not build.configure(quiet):
        fail("the build could not be configured (see above)")
    if not quiet:
        if lesson.cuda:
            cuda_notice()
        say(dim(f"building lesson {lesson.nn} ({lesson.target}) ..."))
    t0 = time.time()
    ok, output = build.build(lesson.target)
    if not ok:
        return Outcome(lesson, "does not compile", build_output=output, from_solutions=from_solutions)
    result = run_tests(build.exe(lesson))
    o = Outcome(lesson, "failing", result.passed, result.total, result, output, from_solutions,
                skipped=result.skipped)
    if result.total and result.passed == result.total and not result.problem:
        o.status = "done"
    elif result.passed == 0 and result.cases and all(
            c.failures and all(f.todo for f in c.failures) for c in result.cases):
        o.status = "not started"
    first = result.first_failing()
    if first:
        o.first = stored_failure(first, lesson, state)
    if not quiet and time.time() - t0 > 5:
        say(dim(f"  built and ran in {time.time() - t0:.0f} s"))
    return o


def cuda_notice() -> None:
    """Once per run: what runs the CUDA lessons' kernels, and how to choose."""
    forced = os.environ.get("ATTN_CUDA", "").strip().lower() in ("gpu", "emulator")
    if cuda_target() == "gpu":
        notice("The CUDA kernels run on this machine's NVIDIA GPU, compiled by nvcc"
               + (" (ATTN_CUDA=gpu)." if forced else ".")
               + " To run them on the CPU emulator instead: ATTN_CUDA=emulator ./learn NN")
    else:
        notice("The CUDA kernels run on the CPU emulator (common/cuda/README.md)"
               + (" (ATTN_CUDA=emulator)." if forced else ": this machine has no NVIDIA GPU with nvcc.")
               + " On a machine with one, ./learn uses it; ATTN_CUDA=gpu or ATTN_CUDA=emulator chooses.")


def assess(lessons: List[Lesson], state: State, solutions: bool, upto: Optional[Lesson] = None,
           use_cache: bool = False, quiet: bool = False) -> Tuple[List[Outcome], List[str]]:
    """Outcomes of the lessons in order, each built with the unfinished lessons it uses
    taken from solutions/. With `upto`, only the lessons `upto` uses (lessons/manifest.json);
    returns (outcomes, the lessons `upto` must take from solutions/)."""
    outcomes: Dict[str, Outcome] = {}
    first_unfinished = False
    for lesson in lessons:
        if upto is not None and lesson.nn not in upto.uses:
            continue
        from_sol = [] if solutions else [u for u in lesson.uses if u in outcomes and not outcomes[u].done]
        key = tree_key(lesson, lessons, from_sol, solutions)
        rec = state.cached(lesson, key) if use_cache and not solutions else None
        if rec and rec.get("skipped"):
            rec = None  # what was skipped (a model not yet fetched) may run now
        if not solutions and (first_unfinished or upto is not None) and untouched(lesson):
            o = Outcome(lesson, "not started", from_solutions=from_sol, evaluated=False)
        elif rec:
            o = Outcome(lesson, rec["status"], rec["passed"], rec["total"], from_solutions=from_sol,
                        first=rec.get("first_failure"))
        else:
            o = evaluate(lesson, lessons, from_sol, solutions, state, quiet)
            if not solutions:
                state.record(o, key)
        outcomes[lesson.nn] = o
        if not o.done:
            first_unfinished = True
    wanted = upto.uses if upto is not None else []
    return list(outcomes.values()), [u for u in wanted if not solutions and not outcomes[u].done]


def show_failure_detail(first: dict, lesson: Lesson) -> None:
    say(f"  first failing test: {bold(first['name'])}")
    say(dim(f"                      {first['where']}"))
    say(indent(first["text"], "    "))
    if first.get("section") and "read:" not in first["text"]:
        say(f"    read: {rel(lesson.readme)}, section \"{first['section']}\"")


def unfinished_lines(outcomes: List[Outcome]) -> List[str]:
    """Which unfinished lessons the tests of later lessons take from solutions/."""
    users: Dict[str, List[str]] = {}
    for o in outcomes:
        if o.status == "not started":
            continue  # says nothing yet: no code of it has run
        for nn in o.from_solutions:
            users.setdefault(nn, []).append(o.lesson.nn)
    lines = []
    for nn, later in sorted(users.items()):
        who = f"lesson {later[0]}'s tests use" if len(later) == 1 else f"the tests of lessons {lesson_range(later)} use"
        lines.append(f"lesson {nn} is unfinished: {who} its reference solution (solutions/)")
    if len(lines) > 3:
        return [f"lessons {lesson_range(sorted(users))} are unfinished: each later lesson's tests use the "
                f"reference solutions of the unfinished lessons its code uses"]
    return lines


def from_solutions_line(lesson: Lesson, from_solutions: List[str]) -> str:
    if not from_solutions:
        return ""
    which = lesson_range(from_solutions)
    are = "is" if len(from_solutions) == 1 else "are"
    return (f"lesson {lesson.nn}'s code uses {'lesson' if len(lesson.uses) == 1 else 'lessons'} "
            f"{lesson_range(lesson.uses)}; "
            f"{'lesson' if len(from_solutions) == 1 else 'lessons'} {which} {are} unfinished, "
            f"so these tests use {'its' if len(from_solutions) == 1 else 'their'} reference solution"
            f"{'' if len(from_solutions) == 1 else 's'} (solutions/)")


def next_commands(lesson: Lesson, solutions: bool) -> None:
    s = "--solutions " if solutions else ""
    say(f"  ./learn {s}{lesson.nn:<10} build and run lesson {lesson.nn}'s tests")
    say(f"  ./learn hint {lesson.nn:<5}{'' if not s else ' ' * len(s)} a hint for the first failing TODO")
    say(f"  ./learn {s}watch {lesson.nn:<4} re-run the tests each time you save a file of "
        f"{rel(lesson.solution if solutions else lesson.scaffold)}")


def cmd_progress(solutions: bool) -> int:
    setup()
    lessons = load_lessons()
    if not lessons:
        fail("no lessons found (tests/NN_topic folders)")
    state = State()
    outcomes, _ = assess(lessons, state, solutions)
    if not solutions:
        state.save()
    done = sum(o.done for o in outcomes)
    total = len(outcomes)
    width = 30
    filled = round(width * done / total)
    say()
    label = "Progress (solutions/)" if solutions else "Progress"
    say(f"{bold(label)}  [{green('#' * filled)}{'-' * (width - filled)}]  {bold(f'{done}/{total}')}")
    say()
    name_w = max(len(f"{o.lesson.nn}  {o.lesson.title}") for o in outcomes)
    for o in outcomes:
        head = f"{o.lesson.nn}  {o.lesson.title}".ljust(name_w)
        if o.done and o.skipped:
            status = green("done") + dim(f"         {o.total - o.skipped}/{o.total} tests pass, ") + \
                yellow(f"{o.skipped} skipped")
        elif o.done:
            status = green("done") + dim(f"         {o.total}/{o.total} tests pass")
        elif o.status == "does not compile":
            status = red("does not compile")
        elif o.status == "not started":
            status = "not started" + (dim(f"  {o.total} tests") if o.evaluated and o.total else "")
        else:
            status = yellow("failing") + f"      {o.total - o.passed} of {o.total} tests"
        say(f"  {head}   {status}")
    lines = unfinished_lines(outcomes)
    if lines:
        say()
        for line in lines:
            say(dim(line))
    nxt = next((o for o in outcomes if not o.done), None)
    say()
    if nxt is None:
        say(green(bold(f"All {total} lessons are done.")) + " Run ./learn check to build the docs and run every test.")
        return 0
    lesson = nxt.lesson
    say(bold(f"Next: lesson {lesson.nn}, {lesson.title}") + dim(f"   ({rel(lesson.scaffold)})"))
    if nxt.status == "does not compile":
        say(red(f"  {rel(lesson.scaffold)} does not compile:"))
        say()
        say(indent(readable_build_errors(nxt.build_output), "  "))
    elif nxt.first:
        if nxt.status == "not started" and not solutions:
            say(f"  start by reading {rel(lesson.readme)} from the top")
        show_failure_detail(nxt.first, lesson)
    say()
    next_commands(lesson, solutions)
    return 0


# --------------------------------------------------------------------------------------
# ./learn NN, hint, watch
# --------------------------------------------------------------------------------------

def print_run(o: Outcome, solutions: bool) -> None:
    lesson = o.lesson
    code = rel(lesson.solution if solutions else lesson.scaffold)
    say()
    say(bold(f"Lesson {lesson.nn}: {lesson.title}") + dim(f"   ({'the reference' if solutions else 'your code'}: {code})"))
    if o.from_solutions:
        notice(from_solutions_line(lesson, o.from_solutions))
    if o.status == "does not compile":
        say()
        say(red(bold(f"{code} does not compile:")))
        say()
        say(readable_build_errors(o.build_output))
        return
    warns = learner_warnings(o.build_output)
    if warns:
        say()
        say(yellow("compiler warnings in your code:"))
        for w in warns[:20]:
            say("  " + highlight(w))
    r = o.run
    say()
    detailed = 0
    for c in r.cases:
        if c.state == "passed" and c.skipped:
            say(f"  {yellow('skip')}  {c.name}")
            continue
        if c.state == "passed":
            say(f"  {green('pass')}  {c.name}")
            continue
        mark = red("FAIL") if c.state == "failed" else yellow("skip")
        say(f"  {mark}  {c.name}")
        if detailed == 0 and c.state == "failed":
            say(dim(f"        {c.where}"))
            say(indent(failure_text(c), "        "))
            detailed += 1
        else:
            say(dim(indent(c.summary(), "        ")))
    if r.output.strip():
        out = r.output.strip().splitlines()
        say()
        say(dim(f"what the tests printed ({plural(len(out), 'line')}" + (", the last 60" if len(out) > 60 else "") + "):"))
        say(indent("\n".join(out[-60:]), "  "))
    if r.problem:
        say()
        say(red(r.problem))
    say()
    if o.done and r.skipped:
        say(green(bold(f"All {r.total - r.skipped} tests of lesson {lesson.nn} that ran pass; ")) +
            yellow(bold(f"{r.skipped} did not run")) + yellow(f": {r.skip_reason()}"))
        say(dim("The lesson counts as done; run it again to test what was skipped."))
    elif o.done:
        say(green(bold(f"All {r.total} tests of lesson {lesson.nn} pass.")) +
            ("" if solutions else " Run ./learn to see your progress and the next lesson."))
    else:
        say(f"{bold(str(r.passed))} of {r.total} tests pass, " + red(f"{r.total - r.passed} fail") + ".")
        first = r.first_failing()
        ni = first.not_implemented() if first else None
        if not ni and o.first and o.first.get("section"):
            say(f"read: {rel(lesson.readme)}, section \"{o.first['section']}\"")
        say(f"hint: ./learn hint {lesson.nn}")


def run_lesson(lesson: Lesson, lessons: List[Lesson], state: State, solutions: bool,
               from_sol: Optional[List[str]] = None) -> Outcome:
    if from_sol is None:
        from_sol = [] if solutions else assess(lessons, state, solutions, upto=lesson, use_cache=True)[1]
    o = evaluate(lesson, lessons, from_sol, solutions, state)
    if not solutions:
        state.record(o, tree_key(lesson, lessons, from_sol, solutions))
        state.save()
    print_run(o, solutions)
    return o


def cmd_lesson(arg: str, solutions: bool) -> int:
    setup()
    lessons = load_lessons()
    lesson = find_lesson(lessons, arg)
    o = run_lesson(lesson, lessons, State(), solutions)
    return 0 if o.done else 1


def cmd_hint(args: List[str], solutions: bool) -> int:
    lessons = load_lessons()
    if not args or len(args) > 2:
        fail("usage: ./learn hint NN [k]   (e.g. ./learn hint 01, ./learn hint 01 3)", 2)
    lesson = find_lesson(lessons, args[0])
    todos = sorted(lesson_todos(lesson.scaffold), key=lambda t: todo_order(t.todo))
    hints = hint_sections(lesson)
    if not todos:
        fail(f"{rel(lesson.scaffold)} has no TODO markers")
    chosen, why = None, ""
    if len(args) == 2:
        k = args[1].split(".")[-1]
        tid = f"{lesson.nn}.{int(k)}" if k.isdigit() else None
        chosen = next((t for t in todos if t.todo == tid), None)
        if not chosen:
            fail(f"lesson {lesson.nn} has no TODO({lesson.nn}.{k}); its TODOs: "
                 + ", ".join(t.todo for t in todos), 2)
    else:
        state = State()
        first = None
        if not solutions:
            setup()
            lesson_key_deps = assess(lessons, state, False, upto=lesson, use_cache=True)[1]
            key = tree_key(lesson, lessons, lesson_key_deps, False)
            rec = state.cached(lesson, key)
            if rec is None:
                o = evaluate(lesson, lessons, lesson_key_deps, False, state)
                state.record(o, key)
                state.save()
                rec = state.cached(lesson, key)
                if o.status == "does not compile":
                    say(red(f"{rel(lesson.scaffold)} does not compile; run ./learn {lesson.nn} to see the errors."))
                    return 1
            if rec["status"] == "done":
                say(green(f"Every test of lesson {lesson.nn} passes.") +
                    f" Hints of one TODO: ./learn hint {lesson.nn} k (k = 1 .. {len(todos)})")
                return 0
            first = rec.get("first_failure")
        if first and first.get("todo"):
            chosen = next((t for t in todos if t.todo == first["todo"]), None)
            verb = "stops at" if NOT_IMPLEMENTED in first.get("text", "") else "last reached"
            why = f"the first failing test, \"{first['name']}\", {verb} TODO({first['todo']})"
        if chosen is None:
            chosen = next((t for t in todos if scaffold_throw(t)), todos[0])
            why = f"TODO({chosen.todo}) is the first one not filled in yet"
            if first:
                why = f"the first failing test is \"{first['name']}\"; " + why
    section = scaffold_throw(chosen)
    say()
    say(bold(f"Hint for TODO({chosen.todo})") + dim(f"   {rel(chosen.file)}:{chosen.line}"))
    say(dim(f"  {chosen.marker}"))
    if why:
        say(dim(f"  ({why})"))
    say()
    if chosen.todo in hints:
        say(math_to_text(hints[chosen.todo][1]))
    else:
        say(yellow(f"{rel(lesson.hints)} has no section '## TODO({chosen.todo})'." if lesson.hints.exists()
                   else f"this lesson has no {rel(lesson.hints)} yet."))
    readme_section = section[1] if section else None
    if not readme_section:
        known = State().data["test_todo"].get(lesson.nn, {})
        readme_section = next((s for (tid, s) in known.values() if tid == chosen.todo and s), None)
    say()
    if readme_section:
        say(f"read: {rel(lesson.readme)}, section \"{readme_section}\"")
    others = [t.todo.split(".")[1] for t in todos if t.todo != chosen.todo]
    if others:
        say(dim(f"other hints: ./learn hint {lesson.nn} k   (k = {', '.join(others)})"))
    return 0


def snapshot(folder: Path) -> Dict[str, float]:
    out = {}
    for p in folder.rglob("*"):
        n = p.name
        if n.startswith(".") or n.endswith("~") or n.endswith((".swp", ".swo", ".swx")) or n.startswith("#"):
            continue
        try:
            if p.is_file():
                out[str(p)] = p.stat().st_mtime
        except OSError:
            pass
    return out


def cmd_watch(arg: str, solutions: bool) -> int:
    setup()
    lessons = load_lessons()
    lesson = find_lesson(lessons, arg)
    folder = lesson.solution if solutions else lesson.scaffold
    state = State()
    from_sol = [] if solutions else assess(lessons, state, solutions, upto=lesson, use_cache=True)[1]
    try:
        while True:
            if Style.on:
                print("\033[2J\033[H", end="")
            say(dim(time.strftime("%H:%M:%S")))
            before = snapshot(folder)  # taken first: a save during the build triggers the next run
            o = run_lesson(lesson, lessons, state, solutions, from_sol)
            say()
            if o.done and not solutions:
                nxt = next((l for l in lessons if l.nn > lesson.nn), None)
                if nxt:
                    say(green(f"Lesson {lesson.nn} is done.") + f" Next: ./learn watch {nxt.nn}   (Ctrl-C stops this one)")
            say(dim(f"watching {rel(folder)}: save a file to re-run, Ctrl-C to stop"))
            while True:
                time.sleep(0.5)
                now = snapshot(folder)
                if now != before:
                    time.sleep(0.3)  # let the editor finish writing
                    break
    except KeyboardInterrupt:
        say()
        say("stopped watching.")
        return 0


# --------------------------------------------------------------------------------------
# ./learn demo
# --------------------------------------------------------------------------------------

def cmd_demo(mine: bool, args: List[str]) -> int:
    """Builds lesson 07's smollm_demo (reference solutions, or every lesson from lessons/
    with --mine) and runs it with the given options."""
    setup()
    lessons = load_lessons()
    if not any(l.nn == "07" for l in lessons):
        fail("lesson 07 (the real model) is not in this repository")
    if not fetch_model():
        fail("the demo needs the model: python3 tools/fetch_model.py")
    build = learner_build(lessons, []) if mine else solutions_build(lessons)
    say(dim(("your lessons 01-07 (lessons/)" if mine else "the reference solutions (solutions/)")
            + f", build folder {rel(build.dir)}"))
    if not build.configure():
        return 1
    say(dim("building smollm_demo ..."))
    ok, output = build.build("smollm_demo")
    if not ok:
        say(readable_build_errors(output))
        return 1
    exe = build.dir / "benchmarks" / "07_real_model" / "smollm_demo"
    return subprocess.call([str(exe)] + args, cwd=ROOT)


