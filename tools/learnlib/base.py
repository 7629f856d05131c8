"""Paths, terminal output and running commands: what every other module uses."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, NoReturn, Optional

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build"
STATE_FILE = ROOT / ".learn" / "progress.json"


class Style:
    on = sys.stdout.isatty() and os.environ.get("NO_COLOR") is None and os.environ.get("TERM") != "dumb"

    @classmethod
    def wrap(cls, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if cls.on else text


def bold(t: str) -> str: return Style.wrap("1", t)
def red(t: str) -> str: return Style.wrap("31", t)
def green(t: str) -> str: return Style.wrap("32", t)
def yellow(t: str) -> str: return Style.wrap("33", t)
def cyan(t: str) -> str: return Style.wrap("36", t)
def dim(t: str) -> str: return Style.wrap("2", t)


def say(text: str = "") -> None:
    print(text, flush=True)


def fail(text: str, code: int = 1) -> NoReturn:
    print(red("learn: ") + text, file=sys.stderr, flush=True)
    sys.exit(code)


_said: set = set()


def notice(text: str) -> None:
    """A note printed at most once per run of ./learn (dimmed)."""
    if text not in _said:
        _said.add(text)
        say(dim(text))


def indent(text: str, by: str = "    ") -> str:
    return "\n".join(by + line if line else line for line in text.splitlines())


def rel(path) -> str:
    """A path relative to the repository root when it lies inside it."""
    s = str(path)
    prefix = str(ROOT) + os.sep
    return s[len(prefix):] if s.startswith(prefix) else s


def relativize(text: str) -> str:
    return text.replace(str(ROOT) + os.sep, "")


def first_lines(text: str, most: int = 8) -> str:
    lines = text.splitlines()
    return "\n".join(lines[:most] + ([f"... ({len(lines) - most} more lines)"] if len(lines) > most else []))


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def join_and(items: List[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def run(cmd: List[str], cwd: Path = ROOT, timeout: Optional[float] = None,
        env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """Runs a command with its output captured (stdout and stderr together)."""
    return subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, text=True, errors="replace",
                          timeout=timeout, env=env)
