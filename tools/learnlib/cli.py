"""The command line of ./learn: one argparse parser; `./learn help` prints the usage text
made from it, and ./learn verify checks the commands in the READMEs with it."""

import argparse
import re
import sys
import textwrap
from typing import List, Optional

LESSON_RE = re.compile(r"\d{1,2}|\d\d_[A-Za-z0-9_]+")


class ArgumentError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message):  # raise instead of exiting, so that callers choose what to print
        m = re.match(r"argument COMMAND: invalid choice: '([^']*)'", message)
        if m:
            message = f"unknown command '{m[1]}'"
        raise ArgumentError(message)


def lesson_arg(value: str) -> str:
    if not LESSON_RE.fullmatch(value):
        raise argparse.ArgumentTypeError(f"'{value}' is not a lesson number (e.g. 01)")
    return value


def todo_arg(value: str) -> str:
    if not re.fullmatch(r"(\d\d\.)?\d+", value):
        raise argparse.ArgumentTypeError(f"'{value}' is not a TODO number (k of TODO(NN.k))")
    return value


def lesson_number(value: str) -> str:
    """"3", "03" or "03_gqa_grouping" -> "03"."""
    return f"{int(value):02d}" if value.isdigit() else value[:2]


def build_parser() -> Parser:
    p = Parser(prog="./learn", add_help=False,
               description="Build, run and check the lessons of this tutorial.")
    p.add_argument("--solutions", action="store_true",
                   help="run ./learn, NN or watch against the reference in solutions/ (build folder "
                        "build/solutions) instead of your code")
    p.add_argument("-h", "--help", action="store_true", help="this text")
    sub = p.add_subparsers(dest="command", parser_class=Parser, metavar="COMMAND")

    def command(name: str, usage: str, help: str) -> Parser:
        c = sub.add_parser(name, add_help=False, help=help, prog=f"./learn {name}")
        c.usage_line = usage  # type: ignore[attr-defined]
        return c

    command("progress", "./learn", "set up what is missing, build, and show your progress")
    c = command("lesson", "./learn NN", "build and run the tests of lesson NN (e.g. ./learn 01)")
    c.add_argument("lesson", type=lesson_arg)
    c = command("hint", "./learn hint NN [k]", "the hint for the first failing TODO of lesson NN (or TODO(NN.k))")
    c.add_argument("lesson", type=lesson_arg)
    c.add_argument("k", nargs="?", type=todo_arg)
    c = command("watch", "./learn watch NN", "re-run lesson NN's tests whenever you save a file of it (Ctrl-C stops)")
    c.add_argument("lesson", type=lesson_arg)
    c = command("demo", "./learn demo [--mine] [OPTIONS]",
                "chat with SmolLM2-135M (lesson 07) on the reference solutions, or with --mine on your "
                "lessons; OPTIONS: --prompt TEXT, --system TEXT, --max-tokens N, --temperature T "
                "(0 = greedy, the default), --top-p P, --seed S, --model FILE (another GGUF file)")
    c.add_argument("--mine", action="store_true")
    for flag, kind in (("--prompt", str), ("--system", str), ("--max-tokens", int), ("--temperature", float),
                       ("--top-p", float), ("--seed", int), ("--model", str)):
        c.add_argument(flag, type=kind)
    c = command("verify", "./learn verify [NN ...]",
                "check every lesson (or those named): scaffold fails, every TODO reached by a test, "
                "solution passes, mutants caught, README and hints agree with the files, TODO rules "
                "(size, skeleton), scaffold equals solution outside the TODOs")
    c.add_argument("lessons", nargs="*", type=lesson_arg)
    command("check", "./learn check", "the full test: set-up, build and test solutions/, verify, docs")
    command("help", "./learn help", "this text")
    return p


def usage() -> str:
    p = build_parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help for a in sub._choices_actions}
    lines = ["usage: ./learn [--solutions] [COMMAND]", ""]
    for name, c in sub.choices.items():
        head = f"  {c.usage_line}"  # type: ignore[attr-defined]
        body = textwrap.wrap(helps[name], 62)
        if len(head) > 24:
            lines.append(head)
            lines += [" " * 25 + b for b in body]
        else:
            lines.append(head.ljust(25) + body[0])
            lines += [" " * 25 + b for b in body[1:]]
    opt = next(a for a in p._actions if "--solutions" in a.option_strings)
    lines.append("")
    lines.append("  --solutions".ljust(25) + textwrap.wrap(opt.help, 62)[0])
    lines += [" " * 25 + b for b in textwrap.wrap(opt.help, 62)[1:]]
    return "\n".join(lines) + "\n"


def parse(argv: List[str]) -> argparse.Namespace:
    """Parses ./learn's arguments; `./learn 03` is the command `lesson 03`."""
    args = list(argv)
    first = next((i for i, a in enumerate(args) if not a.startswith("-")), None)
    if first is not None and LESSON_RE.fullmatch(args[first]):
        args.insert(first, "lesson")
    if first is None and not any(a in ("-h", "--help") for a in args):
        args.append("progress")
    ns = build_parser().parse_args(args)
    if ns.solutions and ns.command not in ("progress", "lesson", "watch"):
        raise ArgumentError(f"--solutions goes with ./learn, ./learn NN or ./learn watch NN, not with {ns.command}")
    return ns


def validate(argv: List[str], lessons: List[str]) -> Optional[str]:
    """What is wrong with these arguments of ./learn (None: nothing), for ./learn verify."""
    try:
        ns = parse(argv)
    except ArgumentError as e:
        return f"./learn does not accept these arguments: {e}"
    named = [getattr(ns, "lesson", None)] + list(getattr(ns, "lessons", None) or [])
    for n in named:
        if n is not None and lesson_number(n) not in lessons:
            return f"there is no lesson '{n}' (lessons/manifest.json has {', '.join(lessons)})"
    return None


def main(argv: List[str]) -> int:
    try:
        ns = parse(argv)
    except ArgumentError as e:
        sys.stderr.write(f"learn: {e}\n(./learn help lists the commands)\n")
        return 2
    if ns.help or ns.command == "help":
        print(usage(), end="")
        return 0
    from . import learner
    if ns.command == "progress":
        return learner.cmd_progress(ns.solutions)
    if ns.command == "lesson":
        return learner.cmd_lesson(ns.lesson, ns.solutions)
    if ns.command == "hint":
        return learner.cmd_hint([ns.lesson] + ([ns.k] if ns.k else []), False)
    if ns.command == "watch":
        return learner.cmd_watch(ns.lesson, ns.solutions)
    if ns.command == "demo":
        forward: List[str] = []
        for flag in ("prompt", "system", "max_tokens", "temperature", "top_p", "seed", "model"):
            value = getattr(ns, flag)
            if value is not None:
                forward += ["--" + flag.replace("_", "-"), str(value)]
        return learner.cmd_demo(ns.mine, forward)
    if ns.command == "verify":
        from .dev.verify import cmd_verify
        return cmd_verify(ns.lessons)
    if ns.command == "check":
        from .dev.check import cmd_check
        return cmd_check()
    raise AssertionError(ns.command)
