"""./learn check: the full test of the repository, as CI runs it: set-up, configure,
build and ctest of solutions/, ./learn verify (its solution column reads the results of
that ctest run instead of running the executables again), and the docs."""

import os
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..base import BUILD, bold, dim, green, plural, red, rel, relativize, run, say
from ..build import highlight, readable_build_errors, solutions_build
from ..manifest import load_lessons
from ..setup import setup
from ..testrun import Case, Failure
from .verify import cmd_verify, restore_mutant_backup


def read_junit(path: Path) -> Optional[Dict[str, List[Case]]]:
    """CTest's JUnit report -> the test cases of each lesson (CTest names them "NN: case")."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    by_lesson: Dict[str, List[Case]] = {}
    for tc in root.iter("testcase"):
        name = tc.get("name", "")
        m = re.match(r"^(\d\d): ?(.*)$", name)
        if not m:
            continue
        case = Case(m[2], tc.get("classname", ""), 0)
        status = tc.get("status", "")
        failed = tc.find("failure") is not None or tc.find("error") is not None
        if status == "run" and not failed:
            case.state = "passed"
        else:
            case.state = "failed"
            out = tc.find("system-out")
            text = (out.text or "").strip() if out is not None else ""
            case.failures.append(Failure(f"ctest status '{status or 'failed'}'" + (f":\n{text[-3000:]}" if text else "")))
        by_lesson.setdefault(m[1], []).append(case)
    return by_lesson


def cmd_check() -> int:
    stages: List[Tuple[str, str, float]] = []

    def stage(name: str, fn) -> bool:
        say()
        say(bold(f"== {name}"))
        t = time.time()
        try:
            ok = bool(fn())
        except SystemExit as e:
            ok = e.code in (0, None)
        stages.append((name, "ok" if ok else "FAILED", time.time() - t))
        return ok

    lessons = load_lessons()
    junit = BUILD / "ci" / "ctest-solutions.xml"
    results: Dict[str, Optional[Dict[str, List[Case]]]] = {"ctest": None}
    sol = solutions_build(lessons)

    def configure():
        for path in restore_mutant_backup():
            say(f"restored {path}, which a stopped verify run had left with a mutant applied")
        return sol.configure()

    def build():
        say(dim(f"cmake --build {rel(sol.dir)} (quiet unless it fails)"))
        ok, output = sol.build()
        if not ok:
            say(readable_build_errors(output))
        return ok

    def ctest():
        jobs = str(os.cpu_count() or 2)
        junit.parent.mkdir(parents=True, exist_ok=True)
        if junit.exists():
            junit.unlink()
        r = run(["ctest", "--preset", "solutions", "-j", jobs, "--output-junit", str(junit)])
        results["ctest"] = read_junit(junit)
        lines = r.stdout.splitlines()
        if r.returncode != 0:
            say(relativize(r.stdout))
        else:
            for line in lines:
                if re.search(r"tests passed|tests failed|Total Test time|Label Time Summary|^\s*lesson\d\d\s*=", line):
                    say(line)
        return r.returncode == 0

    def docs():
        if not sol.has_target("docs"):
            say("no docs target in this build: skipped")
            return True
        ok, output = sol.build("docs")
        warnings = [relativize(l) for l in output.splitlines() if re.search(r"warning:", l, re.I)]
        for w in warnings[:100]:
            say(highlight(w))
        if not ok:
            say(relativize(output[-8000:]))
        index = sol.dir / "docs" / "html" / "index.html"
        if ok and not warnings:
            say(f"docs built without warnings: {rel(index)}")
        elif warnings:
            say(red(f"the docs build printed {plural(len(warnings), 'warning')}"))
        return ok and not warnings

    if stage("set-up (Debian packages)", lambda: (setup(), True)[1]):
        configured = stage("configure solutions (cmake --preset solutions)", configure)
        if configured and stage("build solutions (cmake --build build/solutions)", build):
            stage("test solutions (ctest --preset solutions)", ctest)
        stage("verify (./learn verify)", lambda: cmd_verify(ctest=results["ctest"]) == 0)
        if configured:
            stage("docs (cmake --build build/solutions --target docs)", docs)
    say()
    say(bold("check summary"))
    for name, status, secs in stages:
        say(f"  {(green if status == 'ok' else red)(status.ljust(7))} {name.ljust(52)} {secs:7.1f} s")
    total = sum(s for _, _, s in stages)
    say(f"  {'':7} {'total'.ljust(52)} {total:7.1f} s")
    ok = all(status == "ok" for _, status, _ in stages)
    say(green(bold("check passed")) if ok else red(bold("check failed")))
    return 0 if ok else 1


