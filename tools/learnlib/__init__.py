"""./learn, the runner of this tutorial, in modules (standard library only).

For the learner (what ./learn does for them):
  base       paths, terminal output, running commands
  manifest   lessons/manifest.json: the lessons, their titles and what each uses
  todos      TODO blocks of the scaffold and the solution, README and HINTS sections
  textmath   the README's LaTeX as readable text, for hints in a terminal
  setup      Debian packages and the model of lesson 07
  build      CMake build folders and readable compiler errors
  testrun    running a doctest executable and reading its XML report
  learner    ./learn, ./learn NN, hint, watch, demo
For the maintainer (dev/):
  dev/rules    the TODO rules (size, skeleton) and the README checks (table, commands, map)
  dev/verify   ./learn verify: scaffold, solution, mutants, docs, markers
  dev/check    ./learn check: set-up, build, ctest, verify, docs
The command line is cli.py: one argparse parser, from which the usage text is made.
"""
