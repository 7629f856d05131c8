"""Running a lesson's doctest executable and reading its XML report, even a truncated
one: each test case's state, its failures (a NotImplemented names its TODO), and what a
crash printed (the CUDA emulator's report of an out-of-bounds access) under the test
that crashed."""

import re
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .base import indent, plural, rel

TEST_TIMEOUT_S = 300         # one lesson's test executable
NOT_IMPLEMENTED = "attn::NotImplemented"
NI_RE = re.compile(r"attn::NotImplemented: (\S+) is not implemented yet, TODO\((\d\d)\.(\d+)\) at (\S+?):(\d+)")
READ_RE = re.compile(r'read: (\S+), section "([^"]*)"')
# What the CUDA emulator's fault handler writes before the process ends (common/cuda/emulator/memory.cpp).
EMULATOR_REPORT_RE = re.compile(r"^attn::cuda emulator: .*(?:\n  .*)*", re.M)


@dataclass
class Failure:
    text: str
    todo: Optional[str] = None      # set when it is a NotImplemented
    section: Optional[str] = None
    crash: bool = False
    message_check: bool = False     # a CHECK_THROWS_WITH...: its text shows the expected and the given message


@dataclass
class Case:
    name: str
    file: str
    line: int
    state: str = "not run"          # passed, failed, not run
    failures: List[Failure] = field(default_factory=list)
    skipped: str = ""               # a passed case that checked nothing: why (its "SKIPPED: ..." message)

    @property
    def where(self) -> str:
        return f"{rel(self.file)}:{self.line}"

    def not_implemented(self) -> Optional[Failure]:
        return next((f for f in self.failures if f.todo), None)

    def summary(self) -> str:
        ni = self.not_implemented()
        if ni:
            return f"not implemented yet: TODO({ni.todo})"
        if self.failures:
            f = self.failures[0]
            lines = f.text.splitlines()
            # A message check shows what was expected and what was thrown, wherever it is shown.
            return "\n".join(lines[:4]) if f.message_check else lines[0]
        return "did not run (an earlier test crashed or hung)" if self.state == "not run" else ""


@dataclass
class TestRun:
    cases: List[Case]
    returncode: int = 0
    output: str = ""                 # what the tests printed
    problem: Optional[str] = None    # crash, signal, timeout, unreadable report

    @property
    def passed(self) -> int: return sum(c.state == "passed" for c in self.cases)
    @property
    def total(self) -> int: return len(self.cases)
    @property
    def skipped(self) -> int: return sum(c.state == "passed" and bool(c.skipped) for c in self.cases)
    def skip_reason(self) -> str: return next((c.skipped for c in self.cases if c.skipped), "")

    def first_failing(self) -> Optional[Case]:
        return next((c for c in self.cases if c.state != "passed"), None)


def _text(elem: Optional[ET.Element]) -> Optional[str]:
    if elem is None:
        return None
    t = (elem.text or "").strip()
    return t[1:-1] if len(t) >= 2 and t[0] == '"' and t[-1] == '"' else t


def _failure_from_message(text: str, crash: bool = False) -> Failure:
    f = Failure(text, crash=crash)
    m = NI_RE.search(text)
    if m:
        f.todo = f"{m[2]}.{m[3]}"
        r = READ_RE.search(text)
        f.section = r[2] if r else None
    return f


def _failures(elem: ET.Element, prefix: str = "") -> List[Failure]:
    out: List[Failure] = []
    for child in elem:
        if child.tag == "SubCase":
            out += _failures(child, f"{prefix}subcase \"{child.get('name')}\": ")
        elif child.tag == "Exception":
            crash = child.get("crash") == "true"
            text = _text(child) or ""
            if text.startswith("exception thrown in subcase - will translate later"):
                continue  # doctest's placeholder: the exception itself is reported after the case
            out.append(_failure_from_message(text if NOT_IMPLEMENTED in text else
                                             prefix + ("crashed: " if crash else "threw: ") + text, crash))
        elif child.tag == "Message" and child.get("type") in ("ERROR", "FATAL ERROR", "FAIL", "FAIL_CHECK"):
            out.append(Failure(f"{prefix}{_text(child.find('Text'))}  ({rel(child.get('filename'))}:{child.get('line')})"))
        elif child.tag == "Expression" and child.get("success") == "false":
            exc = _text(child.find("Exception"))
            if exc is not None and NOT_IMPLEMENTED in exc:
                out.append(_failure_from_message(exc))
                continue
            kind, orig = child.get("type"), _text(child.find("Original"))
            lines = [f"{prefix}{kind}( {orig} ) failed at {rel(child.get('filename'))}:{child.get('line')}"]
            expanded = _text(child.find("Expanded"))
            if "THROWS" in (kind or ""):
                lines.append(f"  threw: {exc}" if exc is not None else "  threw nothing")
                if child.find("ExpectedException") is not None:
                    lines.append(f"  expected an exception of type {_text(child.find('ExpectedException'))}")
                if child.find("ExpectedExceptionString") is not None:
                    lines.append(f"  expected a message with: {_text(child.find('ExpectedExceptionString'))}")
            elif exc is not None:
                lines.append(f"  threw: {exc}")
            elif expanded and expanded != orig:
                lines.append(f"  values: {expanded}")
            for info in child.findall("Info"):
                lines.append(indent(_text(info) or "", "  "))
            out.append(Failure("\n".join(lines), message_check="THROWS_WITH" in (kind or "")))
    return out


def list_cases(exe: Path) -> Optional[List[Case]]:
    r = subprocess.run([str(exe), "--list-test-cases", "--reporters=xml", "--no-intro"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                       text=True, errors="replace", timeout=60, cwd=exe.parent)
    try:
        root = ET.fromstring(r.stdout)
    except ET.ParseError:
        return None
    return [Case(e.get("name", ""), e.get("filename", ""), int(e.get("line", "0")))
            for e in root.iter("TestCase") if e.get("skipped") != "true"]


def _read_report(xml: str, by_key: Dict[tuple, Case]) -> Optional[Case]:
    """Fills in the cases of one XML report; returns the last case it started."""
    parser = ET.XMLPullParser(events=("start", "end"))
    last: Optional[Case] = None
    try:
        parser.feed(xml)
        parser.close()
    except ET.ParseError:
        pass  # a truncated report: the events read so far still count
    try:
        for event, elem in parser.read_events():
            if elem.tag != "TestCase":
                continue
            case = by_key.get((elem.get("name", ""), elem.get("filename", ""), int(elem.get("line", "0"))))
            if case is None or elem.get("skipped") == "true":
                continue
            last = case
            if event == "start":
                continue
            overall = elem.find("OverallResultsAsserts")
            ok = overall is not None and overall.get("test_case_success") == "true"
            case.failures = _failures(elem)
            case.state = "passed" if ok else "failed"
            for message in elem.iter("Message"):
                text = _text(message.find("Text")) or ""
                if ok and text.startswith("SKIPPED: "):
                    case.skipped = text[len("SKIPPED: "):]
            if not ok and not case.failures:
                case.failures.append(Failure("failed (no assertion message)"))
    except ET.ParseError:
        pass
    return last


def run_tests(exe: Path, timeout: float = TEST_TIMEOUT_S, extra: Tuple[str, ...] = ()) -> TestRun:
    """Runs a doctest executable and reads its XML report, even a truncated one. When a
    test crashes, the tests after it are run again in a new process. `extra`: more
    doctest options (a mutant needs only its first failure: --abort-after=1)."""
    cases = list_cases(exe)
    if cases is None:
        return TestRun([], problem=f"{rel(exe)} could not list its test cases")
    by_key = {(c.name, c.file, c.line): c for c in cases}
    problems: List[str] = []
    outputs: List[str] = []
    first, code, reran = 1, 0, False
    with tempfile.TemporaryDirectory() as tmp:
        while first <= len(cases):
            report = Path(tmp) / f"report{first}.xml"
            cmd = [str(exe), "--reporters=xml", "--no-intro", f"--out={report}", f"--first={first}", *extra]
            timed_out = False
            try:
                r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, text=True, errors="replace",
                                   timeout=timeout, cwd=exe.parent)
                code, out = r.returncode, r.stdout
            except subprocess.TimeoutExpired as e:
                code, timed_out = -9, True
                out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            outputs.append(out)
            xml = report.read_text(errors="replace") if report.exists() else ""
            last = _read_report(xml, by_key)
            ended = "</doctest>" in xml
            if timed_out:
                problems.append(f"the tests did not finish within {timeout:.0f} s (an endless loop?)"
                                + (f"; the last test started: \"{last.name}\"" if last else ""))
            elif not xml.strip():
                problems.append(f"the tests wrote no report (exit {code})")
            elif code < 0 or code > 128 or not ended:
                how = f"signal {-code}" if code < 0 else f"exit {code}"
                problems.append(f"the test process crashed ({how})" + (f" in \"{last.name}\"" if last else ""))
            if last is not None and last.state == "not run":
                last.state = "failed"
                last.failures.append(Failure("did not finish: " + (problems[-1] if problems else "the process ended"),
                                             crash=True))
            crashed = not timed_out and last is not None and (code < 0 or code > 128 or not ended)
            if last is not None and (crashed or timed_out):
                # What the process wrote as it died (the emulator's report of the access that
                # faulted) belongs under the test that was running, not in a block apart.
                reports = EMULATOR_REPORT_RE.findall(out)
                if reports:
                    target = next((f for f in last.failures if f.crash), None)
                    if target is None:
                        target = Failure("crashed", crash=True)
                        last.failures.append(target)
                    target.text += "\n" + "\n".join(reports)
                    outputs[-1] = EMULATOR_REPORT_RE.sub("", out).strip("\n")
            if not crashed:
                break
            first = cases.index(last) + 2   # run the rest (1-based) in a new process
            reran = first <= len(cases)
    if reran:
        problems.append("the tests after it were run again in a new process")
    return TestRun(cases, code, "".join(outputs), "; ".join(problems) or None)


