"""CMake build folders (one per choice of trees), readable compiler errors, and where
the CUDA lessons' kernels run."""

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .base import BUILD, bold, cyan, dim, plural, red, rel, relativize, run, say, yellow
from .manifest import Lesson, read_manifest


class Build:
    """One CMake build folder: a preset plus cache variables, configured when needed."""

    def __init__(self, folder: str, preset: str, defs: Dict[str, str]):
        self.dir = BUILD / folder
        self.preset = preset
        self.defs = dict(defs)

    def cache(self) -> Dict[str, str]:
        values = {}
        try:
            for line in (self.dir / "CMakeCache.txt").read_text(errors="replace").splitlines():
                m = re.match(r"^([A-Za-z0-9_]+):[A-Z]+=(.*)$", line)
                if m:
                    values[m[1]] = m[2]
        except OSError:
            pass
        return values

    def needs_configure(self) -> bool:
        cache = self.cache()
        if not cache or not (self.dir / "build.ninja").exists():
            return True
        if any(cache.get(k) != v for k, v in self.defs.items()):
            return True
        # A lesson added to lessons/manifest.json since the last configure.
        have = {k[len("ATTN_TREE_"):] for k in cache if re.fullmatch(r"ATTN_TREE_\d\d", k)}
        return have != {l.nn for l in read_manifest()}

    def configure(self, quiet: bool = False) -> bool:
        if not self.needs_configure():
            return True
        fresh = not (self.dir / "CMakeCache.txt").exists()
        if not quiet:
            say(dim(f"configuring {rel(self.dir)}" + (" (the first build takes a few minutes)" if fresh else "")))
        cmd = ["cmake", "--preset", self.preset, "-B", str(self.dir)]
        cmd += [f"-D{k}={v}" for k, v in sorted(self.defs.items())]
        r = run(cmd)
        if r.returncode != 0:
            say(red(f"CMake could not configure {rel(self.dir)}:"))
            say(relativize(r.stdout))
            return False
        return True

    def build(self, target: Optional[str] = None) -> Tuple[bool, str]:
        cmd = ["cmake", "--build", str(self.dir)]
        if target:
            cmd += ["--target", target]
        r = run(cmd)
        return r.returncode == 0, r.stdout

    def has_target(self, target: str) -> bool:
        r = run(["ninja", "-C", str(self.dir), "-t", "targets", "all"])
        return any(line.split(":")[0] == target for line in r.stdout.splitlines())

    def exe(self, lesson: Lesson) -> Path:
        return self.dir / "tests" / lesson.name / lesson.target


def highlight(line: str) -> str:
    line = re.sub(r"\b(error|fatal error):", lambda m: red(bold(m[0])), line)
    line = re.sub(r"\bwarning:", lambda m: yellow(bold(m[0])), line)
    return re.sub(r"\bnote:", lambda m: cyan(m[0]), line)


def readable_build_errors(output: str) -> str:
    """Ninja's failure output without progress lines and compiler command lines, paths
    relative to the repository, and a last line naming the first error."""
    out: List[str] = []
    lines = output.splitlines()
    i = 0
    errors: List[str] = []
    while i < len(lines):
        line = lines[i]
        if re.match(r"^\[\d+/\d+\] ", line) or line.startswith("ninja: build stopped"):
            i += 1
            continue
        if line.startswith("FAILED: "):
            command = lines[i + 1] if i + 1 < len(lines) else ""
            src = re.search(r"\s-c\s+(\S+)", command)
            what = f"compiling {rel(src[1])}" if src else f"linking {rel(line[8:].strip())}"
            out.append("")
            out.append(bold(f"-- {what} failed:"))
            i += 2
            continue
        if re.search(r"\b(error|fatal error):", line):
            errors.append(relativize(line).strip())
        out.append(highlight(relativize(line)))
        i += 1
    text = "\n".join(out).strip("\n")
    if errors:
        text += "\n\n" + bold(f"{plural(len(errors), 'error')}; the first one: ") + "\n  " + highlight(errors[0])
    return text


def learner_warnings(output: str) -> List[str]:
    """Compiler warnings pointing into lessons/ (shown even when the build succeeds)."""
    return [relativize(l) for l in output.splitlines()
            if ": warning:" in l and re.search(r"(^|/)lessons/", l)]


_cuda_target: Optional[str] = None


def cuda_target() -> str:
    """Where the CUDA lessons' kernels run: "gpu" when nvcc and an NVIDIA GPU (nvidia-smi -L)
    are both here, else "emulator" (the CPU emulator of common/cuda). ATTN_CUDA=gpu or
    ATTN_CUDA=emulator decides instead."""
    global _cuda_target
    if _cuda_target is None:
        forced = os.environ.get("ATTN_CUDA", "").strip().lower()
        if forced in ("gpu", "emulator"):
            _cuda_target = forced
        else:
            nvcc = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if Path("/usr/local/cuda/bin/nvcc").exists()
                                            else None)
            smi = shutil.which("nvidia-smi")
            found = False
            if nvcc and smi:
                try:
                    r = subprocess.run([smi, "-L"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                       stdin=subprocess.DEVNULL, text=True, timeout=30)
                    found = r.returncode == 0 and "GPU" in r.stdout
                except (OSError, subprocess.SubprocessError):
                    found = False
            _cuda_target = "gpu" if found else "emulator"
    return _cuda_target


def gpu_defs() -> Dict[str, str]:
    """The cache variables of a build whose .cu files nvcc compiles for this machine's GPU."""
    return {"ATTN_CUDA_GPU": "ON", "CMAKE_CUDA_ARCHITECTURES": "native"}


def learner_build(lessons: List[Lesson], from_solutions: List[str], gpu: bool = False) -> Build:
    """build/learn: every lesson from lessons/. build/learn-ahead: some earlier lessons
    from solutions/ (for a learner working past an unfinished lesson). With `gpu`, the
    same in build/learn-gpu (-ahead), the CUDA lessons compiled by nvcc."""
    defs = {"ATTN_TREE": "lessons"}
    for l in lessons:
        defs[f"ATTN_TREE_{l.nn}"] = "solutions" if l.nn in from_solutions else "lessons"
    folder = "learn-ahead" if from_solutions else "learn"
    if gpu:
        defs.update(gpu_defs())
        folder += "-gpu"
    return Build(folder, "lessons", defs)


def solutions_build(lessons: List[Lesson], gpu: bool = False) -> Build:
    """build/solutions (the CPU emulator for the CUDA lessons), or build/solutions-gpu."""
    defs = {"ATTN_TREE": "solutions"}
    defs.update({f"ATTN_TREE_{l.nn}": "solutions" for l in lessons})
    if gpu:
        defs.update(gpu_defs())
    return Build("solutions-gpu" if gpu else "solutions", "solutions", defs)


