"""lessons/manifest.json, the one list of lessons: number, folder, title, the lessons its
code uses, and whether it has CUDA kernels. CMake, tools/gpu_check.sh and this runner
read it; ./learn verify checks the README's lesson map and each lesson's title against it."""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

from .base import ROOT, fail

MANIFEST = ROOT / "lessons" / "manifest.json"


@dataclass
class Lesson:
    nn: str                      # "01"
    folder: str                  # "01_matmul_attention"
    title: str                   # "Matrix products and attention"
    uses: List[str] = field(default_factory=list)   # lessons whose code this one's code or tests use
    cuda: bool = False
    root: Path = ROOT            # the repository (another one in the runner's own tests)

    @property
    def name(self) -> str: return self.folder
    @property
    def topic(self) -> str: return self.folder[3:]
    @property
    def tests(self) -> Path: return self.root / "tests" / self.folder
    @property
    def scaffold(self) -> Path: return self.root / "lessons" / self.folder
    @property
    def solution(self) -> Path: return self.root / "solutions" / self.folder
    @property
    def target(self) -> str: return f"test_{self.folder}"
    @property
    def readme(self) -> Path: return self.scaffold / "README.md"
    @property
    def hints(self) -> Path: return self.scaffold / "HINTS.md"


class ManifestError(ValueError):
    pass


def read_manifest(path: Path = MANIFEST) -> List[Lesson]:
    """The lessons in order; raises ManifestError saying what is wrong with the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ManifestError(f"cannot read {path}: {e.strerror}")
    except ValueError as e:
        raise ManifestError(f"{path} is not valid JSON: {e}")
    entries = data.get("lessons") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ManifestError(f"{path}: expected an object with a non-empty list \"lessons\"")
    lessons: List[Lesson] = []
    seen: Dict[str, Lesson] = {}
    for i, e in enumerate(entries):
        where = f"{path.name}: lessons[{i}]"
        if not isinstance(e, dict):
            raise ManifestError(f"{where}: expected an object")
        missing = [k for k in ("nn", "folder", "title", "uses", "cuda") if k not in e]
        if missing:
            raise ManifestError(f"{where}: missing {', '.join(missing)}")
        nn, folder = e["nn"], e["folder"]
        if not (isinstance(nn, str) and re.fullmatch(r"\d\d", nn)):
            raise ManifestError(f"{where}: nn must be two digits as a string, given {nn!r}")
        if not (isinstance(folder, str) and re.fullmatch(rf"{nn}_[A-Za-z0-9_]+", folder)):
            raise ManifestError(f"{where}: folder must be '{nn}_<topic>', given {folder!r}")
        if lessons and nn <= lessons[-1].nn:
            raise ManifestError(f"{where}: lessons must be in increasing order, {nn} after {lessons[-1].nn}")
        uses = e["uses"]
        if not isinstance(uses, list) or any(u not in seen for u in uses):
            raise ManifestError(f"{where}: uses must list earlier lessons of the manifest, given {uses!r}")
        if not isinstance(e["cuda"], bool) or not isinstance(e["title"], str) or not e["title"].strip():
            raise ManifestError(f"{where}: title must be a non-empty string and cuda true or false")
        # What a lesson uses, it uses with everything that lesson uses.
        closure = set(uses)
        for u in uses:
            closure |= set(seen[u].uses)
        lesson = Lesson(nn, folder, e["title"].strip(), sorted(closure), e["cuda"])
        lessons.append(lesson)
        seen[nn] = lesson
    return lessons


def load_lessons() -> List[Lesson]:
    try:
        return read_manifest()
    except ManifestError as e:
        fail(str(e))


def find_lesson(lessons: List[Lesson], arg: str) -> Lesson:
    for lesson in lessons:
        if arg in (lesson.nn, lesson.folder, lesson.topic) or (arg.isdigit() and int(arg) == int(lesson.nn)):
            return lesson
    known = ", ".join(l.nn for l in lessons) or "none"
    fail(f"there is no lesson '{arg}' (lessons: {known})", 2)


def lesson_range(nns: List[str]) -> str:
    """["01", "02", "03", "05"] -> "01-03 and 05"."""
    runs: List[List[int]] = []
    for n in sorted(int(x) for x in nns):
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    parts: List[str] = []
    for r in runs:
        parts += [f"{r[0]:02d}-{r[-1]:02d}"] if len(r) > 2 else [f"{x:02d}" for x in r]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
