#!/usr/bin/env python3
"""Tests of md_filter.py, the Doxygen input filter (standard library only).

Run: python3 docs/test_md_filter.py   (CTest runs it under the label `docs`)
"""

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import md_filter  # noqa: E402

ROOT = md_filter.ROOT
LESSON = ROOT / "lessons" / "02_causal_masking" / "README.md"
NOTE = ROOT / "docs" / "notes" / "numerics.md"


def run(text: str, source: Path = LESSON) -> str:
    return md_filter.filter_markdown(text, source)


class Math(unittest.TestCase):
    def test_inline_and_display(self):
        self.assertIn(r"a \f$x_i\f$ b", run("a $x_i$ b"))
        self.assertIn(r"\f[\sum_j p_j\f]", run("$$\\sum_j p_j$$"))
        self.assertIn("\\f[\nm = 1\n\\f]", run("$$\nm = 1\n$$"))

    def test_math_fence_and_dollar_backtick(self):
        self.assertIn("\\f[\na = b\n\\f]", run("```math\na = b\n```"))
        self.assertIn(r"\f$a^2\f$", run("$`a^2`$"))

    def test_code_is_left_alone(self):
        self.assertIn("`echo $x$`", run("run `echo $x$` now"))
        self.assertIn("```sh\necho $x$\n```", run("```sh\necho $x$\n```"))
        self.assertIn("    ```sh\n    echo $x$\n    ```", run("1. a\n\n    ```sh\n    echo $x$\n    ```"))

    def test_dollars_that_are_not_math(self):
        self.assertIn("costs $5 and $10", run("costs $5 and $10"))
        self.assertIn(r"the \$ sign", run(r"the \$ sign"))
        self.assertIn("a $ b", run("a $ b"))
        self.assertNotIn(r"\f$", run("$x\n\ny$"))  # a formula never spans paragraphs

    def test_lines_are_kept(self):
        text = "# T\n\n$$\na\n$$\n\n```math\nb\n```\n\n## S\n"
        out = run(text).split("\n")
        self.assertEqual(out[2], r"\f[")
        self.assertEqual(out[10], "## S {#lesson02-s}")


class Pages(unittest.TestCase):
    def test_page_names(self):
        self.assertTrue(run("# Lesson 02: Causal\n").startswith("# Lesson 02: Causal {#lesson02}"))
        self.assertTrue(run("# Numerics\n", NOTE).startswith("# Numerics {#note_numerics}"))
        self.assertTrue(run("Title\n=====\n").startswith("# Title {#lesson02}"))

    def test_heading_labels_follow_github_anchors(self):
        out = run("# T\n## 3. Two alignments: bottom-right and PyTorch's top-left\n## 1. A\n## 1. A\n")
        self.assertIn("{#lesson02-3-two-alignments-bottom-right-and-pytorchs-top-left}", out)
        self.assertIn("{#lesson02-1-a}", out)
        self.assertIn("{#lesson02-1-a-1}", out)


class Links(unittest.TestCase):
    def test_pages_and_anchors(self):
        self.assertIn("[lesson 01](@ref lesson01)", run("[lesson 01](../01_matmul_attention/README.md)"))
        self.assertIn("[x](@ref lesson01-2-the-matrix-product)",
                      run("[x](../01_matmul_attention/README.md#2-the-matrix-product)"))
        self.assertIn("[here](@ref lesson02-1-why)", run("[here](#1-why)"))
        self.assertIn("[n](@ref note_numerics)", run("[n](../../docs/notes/numerics.md)"))
        self.assertIn("[home](@ref index)", run("[home](../../README.md)"))
        self.assertIn("[the notes](@ref notes)", run("[the notes](../../docs/notes/)"))

    def test_headers_figures_and_other_files(self):
        self.assertIn("[causal.hpp](@ref causal.hpp)", run("[`causal.hpp`](causal.hpp)"))
        self.assertIn("[core.hpp](@ref core.hpp):", run("[core.hpp](../../common/attn/core.hpp):"))
        self.assertIn("![mask](02_mask.svg)", run("![mask](../../docs/figures/02_mask.svg)"))
        self.assertIn("`lessons/02_causal_masking/causal.cpp`", run("[causal.cpp](causal.cpp)"))
        self.assertIn("the hints (`lessons/02_causal_masking/HINTS.md`)", run("[the hints](HINTS.md)"))
        self.assertIn("[web](https://example.org/a)", run("[web](https://example.org/a)"))


class DoxygenQuirks(unittest.TestCase):
    def test_quotes_become_curly(self):
        self.assertIn("\u201cGQA with \\f$G = H\\f$\u201d", run('"GQA with $G = H$"'))
        self.assertIn('<img src="a.svg">', run('<img src="a.svg">'))

    def test_emphasis_becomes_html(self):
        self.assertIn(r"<b>Zero instead of \f$-\infty\f$</b>", run(r"**Zero instead of $-\infty$**"))
        self.assertIn("laid out <b>(B, H, T, D)</b>,", run("laid out **(B, H, T, D)**,"))
        self.assertIn("cache <em>(coming)</em>", run("cache *(coming)*"))
        self.assertIn("<b>`code` first</b>", run("**`code` first**"))
        self.assertIn("a*b*c and 2 * 3 * 4", run("a*b*c and 2 * 3 * 4"))
        self.assertIn("q_offset and k_max", run("q_offset and k_max"))


if __name__ == "__main__":
    unittest.main()
