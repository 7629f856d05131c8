"""Tests of ./learn verify's rules (tools/learnlib/dev/rules.py) and of the runner's
parsing, on a small lesson written into a temporary folder: each planted mistake
(a 30-line TODO body, a code line in a scaffold's TODO body, a README table missing a
TODO, a README command that tests the reference as if it were the learner's code)
must be reported with the file and the rule. Standard library only; CTest runs it
(label runner)."""

import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from learnlib.cli import validate  # noqa: E402
from learnlib.dev import rules  # noqa: E402
from learnlib.manifest import Lesson, ManifestError, lesson_range, read_manifest  # noqa: E402
from learnlib.testrun import Case, Failure  # noqa: E402
from learnlib.textmath import math_to_text  # noqa: E402
from learnlib.todos import lesson_todos, parse_todos, scaffold_throw  # noqa: E402

SOLUTION = """\
#include "x.hpp"
namespace attn {

float twice(float x) {
  // TODO(99.1): 1. double it
  // 1. double it
  return 2 * x;
  // END TODO(99.1)
}

Tensor4 KVThing::append(const Tensor4& k,
                        int n) {
  // TODO(99.2): append
  return k;
  // END TODO(99.2)
}

}  // namespace attn
"""
SCAFFOLD = SOLUTION.replace("  return 2 * x;\n", '  throw NotImplemented("99.1", "2. Twice");\n') \
                   .replace("  return k;\n", '  throw NotImplemented("99.2", "3. Append");\n')
README = """\
# Lesson 99: A test lesson

The TODOs below, in order:

| TODO | function | section |
|---|---|---|
| 99.1 | `twice(x)` | 2 |
| 99.2 | `KVThing::append(k, n)` | 3 |

Run `./learn 99` to test them.

## 2. Twice
## 3. Append
"""


class LessonFiles:
    """A lesson 99 in a temporary repository, written from the texts above."""

    def __init__(self, tmp: Path, solution=SOLUTION, scaffold=SCAFFOLD, readme=README):
        self.lesson = Lesson("99", "99_test", "A test lesson", ["01"], False, root=tmp)
        for folder, text in ((self.lesson.solution, solution), (self.lesson.scaffold, scaffold)):
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "x.cpp").write_text(text)
        (self.lesson.scaffold / "README.md").write_text(readme)


class Rules(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = Path(self._tmp.name)

    def tearDown(self):
        self._tmp.cleanup()

    def test_a_clean_lesson_has_no_problem(self):
        f = LessonFiles(self.tmp)
        self.assertEqual(rules.check_size(f.lesson), [])
        self.assertEqual(rules.check_table(f.lesson), [])
        sca = {t.todo: t for t in lesson_todos(f.lesson.scaffold)}
        sol = {t.todo: t for t in lesson_todos(f.lesson.solution)}
        for tid in sca:
            self.assertEqual(rules.check_skeleton(sca[tid], sol[tid]), [])

    def test_the_function_of_a_todo_is_found_across_a_signature_of_several_lines(self):
        f = LessonFiles(self.tmp)
        self.assertEqual([t.function for t in lesson_todos(f.lesson.solution)], ["twice", "KVThing::append"])

    def test_a_30_line_body_breaks_the_size_rule(self):
        body = "".join(f"  x += {i};\n" for i in range(30))
        f = LessonFiles(self.tmp, solution=SOLUTION.replace("  return 2 * x;\n", body + "  return 2 * x;\n"))
        problems = rules.check_size(f.lesson)
        self.assertEqual(len(problems), 1)
        self.assertIn("solutions/99_test/x.cpp:5", problems[0])
        self.assertIn("rule 'TODO size'", problems[0])
        self.assertIn("has 31 lines of code", problems[0])

    def test_blank_and_comment_lines_do_not_count(self):
        body = "".join(f"  // step {i}\n\n" for i in range(30))
        f = LessonFiles(self.tmp, solution=SOLUTION.replace("  return 2 * x;\n", body + "  return 2 * x;\n"))
        self.assertEqual(rules.check_size(f.lesson), [])

    def test_a_code_line_in_a_scaffold_body_breaks_the_skeleton_rule(self):
        f = LessonFiles(self.tmp, scaffold=SCAFFOLD.replace('  throw NotImplemented("99.1"',
                                                            '  float y = x;\n  throw NotImplemented("99.1"'))
        todo = next(t for t in lesson_todos(f.lesson.scaffold) if t.todo == "99.1")
        self.assertIsNone(scaffold_throw(todo))
        problems = rules.check_skeleton(todo, None)
        self.assertEqual(len(problems), 1)
        self.assertIn("lessons/99_test/x.cpp:5", problems[0])
        self.assertIn("rule 'skeleton'", problems[0])
        self.assertIn("'float y = x;'", problems[0])

    def test_step_comments_must_appear_in_the_solution_in_order(self):
        scaffold = SCAFFOLD.replace("  // 1. double it\n", "  // 1. double it\n  // 2. return it\n")
        f = LessonFiles(self.tmp, scaffold=scaffold)
        sca = next(t for t in lesson_todos(f.lesson.scaffold) if t.todo == "99.1")
        sol = next(t for t in lesson_todos(f.lesson.solution) if t.todo == "99.1")
        problems = rules.check_skeleton(sca, sol)
        self.assertEqual(len(problems), 1)
        self.assertIn("'// 2. return it'", problems[0])
        self.assertIn("rule 'skeleton'", problems[0])

    def test_a_readme_table_missing_a_todo_breaks_the_table_rule(self):
        f = LessonFiles(self.tmp, readme=README.replace("| 99.2 | `KVThing::append(k, n)` | 3 |\n", ""))
        problems = rules.check_table(f.lesson)
        self.assertEqual(len(problems), 1)
        self.assertIn("lessons/99_test/README.md", problems[0])
        self.assertIn("rule 'TODO table'", problems[0])
        self.assertIn("missing 99.2", problems[0])

    def test_a_table_row_must_name_the_function(self):
        f = LessonFiles(self.tmp, readme=README.replace("`twice(x)`", "`thrice(x)`"))
        problems = rules.check_table(f.lesson)
        self.assertEqual(len(problems), 1)
        self.assertIn("does not name `twice`", problems[0])

    def test_a_stale_count_of_bodies_is_reported(self):
        f = LessonFiles(self.tmp, readme=README.replace("The TODOs below, in order:", "You will write three bodies:"))
        problems = rules.check_table(f.lesson)
        self.assertTrue(any("\"write three bodies\", but the scaffold has 2 TODOs" in p for p in problems), problems)

    def test_a_command_testing_the_reference_for_the_learner_breaks_the_commands_rule(self):
        readme = README.replace(
            "Run `./learn 99` to test them.",
            "The tests of this lesson alone: `ctest --preset solutions -L lesson01`.")
        f = LessonFiles(self.tmp, readme=readme)
        lessons = read_manifest()
        problems = rules.check_commands(f.lesson.readme, rules.Project(lessons))
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("rule 'commands'", problems[0])
        self.assertIn("tests the reference", problems[0])
        # The same command where the paragraph says it tests the reference is fine.
        f2 = LessonFiles(self.tmp, readme=readme.replace("The tests of this lesson alone",
                                                         "The reference's tests of this lesson alone"))
        self.assertEqual(rules.check_commands(f2.lesson.readme, rules.Project(lessons)), [])

    def test_commands_must_name_presets_targets_labels_and_paths_that_exist(self):
        project = rules.Project(read_manifest())
        self.assertEqual(rules._check_command("cmake --build --preset lessons --target test_01_matmul_attention",
                                              "", project), [])
        bad = rules._check_command("cmake --build --preset nope --target test_99_x && ctest --preset lessons -L "
                                   "lesson77 && ./learn 42 && cat lessons/nothing.md", "", project)
        text = "\n".join(bad)
        for expected in ("no build preset 'nope'", "no CMake target 'test_99_x'", "no CTest label 'lesson77'",
                         "there is no lesson '42'", "the path lessons/nothing.md does not exist"):
            self.assertIn(expected, text)


class Parsing(unittest.TestCase):
    def test_todo_markers_must_match(self):
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / "a.cpp"
            p.write_text("void f() {\n  // TODO(01.1): x\n  // END TODO(01.2)\n}\n")
            problems = parse_todos(p)[2]
            self.assertTrue(any("END TODO(01.2) without a matching TODO(01.2)" in x for x in problems), problems)

    def test_the_manifest_refuses_a_lesson_that_uses_a_later_one(self):
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / "manifest.json"
            p.write_text('{"lessons": [{"nn": "01", "folder": "01_a", "title": "A", "uses": ["02"], "cuda": false}]}')
            with self.assertRaisesRegex(ManifestError, "uses must list earlier lessons"):
                read_manifest(p)

    def test_uses_include_what_the_used_lessons_use(self):
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / "manifest.json"
            p.write_text('{"lessons": [{"nn": "01", "folder": "01_a", "title": "A", "uses": [], "cuda": false},'
                         '{"nn": "02", "folder": "02_b", "title": "B", "uses": ["01"], "cuda": false},'
                         '{"nn": "03", "folder": "03_c", "title": "C", "uses": ["02"], "cuda": true}]}')
            self.assertEqual(read_manifest(p)[2].uses, ["01", "02"])

    def test_the_real_manifest_reads(self):
        lessons = read_manifest()
        self.assertEqual(lessons[0].nn, "01")
        self.assertEqual(lessons[8].uses, ["01", "02", "03"])  # lesson 09: its code uses 01-03 only

    def test_lesson_ranges_read_as_words(self):
        self.assertEqual(lesson_range(["01", "02"]), "01 and 02")
        self.assertEqual(lesson_range(["01", "02", "03", "05"]), "01-03 and 05")

    def test_the_command_line(self):
        lessons = [l.nn for l in read_manifest()]
        for ok in (["09"], ["hint", "02", "3"], ["--solutions", "07"], ["demo", "--mine", "--prompt", "hi"],
                   ["verify", "01", "03"], ["check"], []):
            self.assertIsNone(validate(ok, lessons), ok)
        for bad in (["42"], ["hint", "02", "x"], ["verify", "--solutions"], ["check", "03"], ["frobnicate"]):
            self.assertIsNotNone(validate(bad, lessons), bad)

    def test_a_message_check_shows_expected_and_given_in_its_summary(self):
        text = ("CHECK_THROWS_WITH_AS( f() ) failed at t.cpp:3\n  threw: got this\n"
                "  expected an exception of type std::invalid_argument\n  expected a message with: want that")
        case = Case("c", "t.cpp", 1, "failed", [Failure(text, message_check=True)])
        self.assertIn("threw: got this", case.summary())
        self.assertIn("expected a message with: want that", case.summary())

    def test_math_reads_as_text(self):
        self.assertEqual(math_to_text(r"$s = \frac{q \cdot k}{\sqrt{D}}$"), "s = (q · k)/√D")
        self.assertEqual(math_to_text(r"$m_i = \max_j s_{ij}$ and `$x$`"), "mᵢ = maxⱼ sᵢⱼ and `$x$`")


class Mutants(unittest.TestCase):
    """./learn verify applies each mutant to solutions/ itself (dev/verify.py): the files a
    patch touches must come back whatever happens, and a run stopped half-way is undone
    by the next one."""

    def setUp(self):
        from learnlib.dev import verify
        self.verify = verify
        self.tmp = tempfile.TemporaryDirectory()
        root = Path(self.tmp.name)
        self.saved = (verify.ROOT, verify.MUTANT_BACKUP)
        verify.ROOT, verify.MUTANT_BACKUP = root, root / "build" / "verify" / "mutant-backup"
        self.file = root / "solutions" / "99_x" / "x.cpp"
        self.file.parent.mkdir(parents=True)
        self.file.write_text("int f() { return 1; }\n")
        self.patch = root / "m.patch"
        self.patch.write_text("Mistake: returns 2\nCaught by: f returns 1\n---\n"
                              "--- a/solutions/99_x/x.cpp\n+++ b/solutions/99_x/x.cpp\n"
                              "@@ -1 +1 @@\n-int f() { return 1; }\n+int f() { return 2; }\n")

    def tearDown(self):
        self.verify.ROOT, self.verify.MUTANT_BACKUP = self.saved
        self.tmp.cleanup()

    def test_a_mutant_is_applied_and_then_undone_even_after_an_error(self):
        with self.assertRaises(KeyboardInterrupt):
            with self.verify.AppliedMutant(self.patch, ["solutions/99_x/x.cpp"]) as m:
                ok, _ = m.apply()
                self.assertTrue(ok)
                self.assertIn("return 2", self.file.read_text())
                raise KeyboardInterrupt
        self.assertEqual(self.file.read_text(), "int f() { return 1; }\n")
        self.assertFalse(self.verify.MUTANT_BACKUP.exists())

    def test_a_run_killed_with_a_mutant_applied_is_undone_by_the_next(self):
        m = self.verify.AppliedMutant(self.patch, ["solutions/99_x/x.cpp"]).__enter__()
        self.assertTrue(m.apply()[0])          # ... and the process is killed here: no __exit__
        self.assertEqual(self.verify.restore_mutant_backup(), ["solutions/99_x/x.cpp"])
        self.assertEqual(self.file.read_text(), "int f() { return 1; }\n")
        self.assertEqual(self.verify.restore_mutant_backup(), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
