#!/usr/bin/env bash
# Lesson 07's experiments, by one command, from the repository root or anywhere:
#
#   benchmarks/07_real_model/run.sh [--quick]
#
# Builds bench_model against solutions/ (RelWithDebInfo: -O2), fetches the model if needed,
# writes the measurements to lessons/07_real_model/results.json, draws model_speedup.png and
# model_kv_bytes.png next to the README with gnuplot and writes the README's numbers between its
# result markers (--quick: a smoke test of two minutes, to /tmp/bench_model_quick.json,
# nothing else written). A full run takes about twenty minutes on 2 cores; run it on a
# quiet machine. ATTN_BENCH_BUILD chooses the build folder
# (default build/bench).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${ATTN_BENCH_BUILD:-$root/build/bench}
python3 "$root/tools/fetch_model.py" >/dev/null
cmake -S "$root" -B "$build" -G Ninja -DATTN_TREE=solutions -DATTN_WERROR=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target bench_model
out="$root/lessons/07_real_model/results.json"
if [ "${1:-}" = "--quick" ]; then out=/tmp/bench_model_quick.json; fi
echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
"$build/benchmarks/07_real_model/bench_model" "$out" "$@"
if [ "${1:-}" != "--quick" ]; then python3 "$root/benchmarks/07_real_model/report.py"; fi
