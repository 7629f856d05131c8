#!/usr/bin/env bash
# Lesson 05's benchmark, by one command, from the repository root or anywhere:
#
#   benchmarks/05_cached_generation/run.sh [--quick]
#
# Builds bench_generation against solutions/ (RelWithDebInfo: -O2), runs it on one thread,
# writes lessons/05_cached_generation/results.json, draws speedup.png, kv_bytes.png and
# decode_time.png next to the README with gnuplot, and writes the README's numbers between
# its result markers. A full run takes a few minutes; run it on a quiet machine.
# ATTN_BENCH_BUILD chooses the build folder (default build/bench).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${ATTN_BENCH_BUILD:-$root/build/bench}
command -v gnuplot >/dev/null || { echo "run.sh: gnuplot is missing (Debian: apt-get install gnuplot-nox)" >&2; exit 1; }
cmake -S "$root" -B "$build" -G Ninja -DATTN_TREE=solutions -DATTN_WERROR=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target bench_generation
echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
"$build/benchmarks/05_cached_generation/bench_generation" \
  "$root/lessons/05_cached_generation/results.json" "$@"
python3 "$root/benchmarks/05_cached_generation/report.py"
