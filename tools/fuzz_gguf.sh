#!/usr/bin/env bash
# Fuzzes the GGUF reader (common/gguf) with libFuzzer under AddressSanitizer and
# UndefinedBehaviorSanitizer, for a bounded time, from a generated seed corpus.
#
#   tools/fuzz_gguf.sh [SECONDS]      default 60; exits non-zero on any crash,
#                                     sanitizer report, leak, timeout or OOM
#
# Needs clang with libFuzzer (Debian: apt-get install clang libclang-rt-14-dev).
# Builds into build/fuzz-gguf/ (CXX overrides the compiler). The corpus that
# libFuzzer grows is kept in build/fuzz-gguf/corpus between runs; the seeds are
# remade each run by tests/gguf/make_corpus.py (with the model's header when
# tools/fetch_model.py has fetched it). A crashing input is saved in
# build/fuzz-gguf/crashes/; replay it with `build/fuzz-gguf/fuzz_gguf FILE`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=${1:-60}
out=build/fuzz-gguf
cxx=${CXX_FUZZ:-clang++}
mkdir -p "$out/corpus" "$out/crashes"

if ! command -v "$cxx" >/dev/null 2>&1; then
  echo "fuzz_gguf: $cxx not found (Debian: apt-get install clang libclang-rt-14-dev)" >&2
  exit 2
fi
probe="$out/probe.cpp"
printf '#include <cstddef>\n#include <cstdint>\nextern "C" int LLVMFuzzerTestOneInput(const std::uint8_t*, std::size_t) { return 0; }\n' >"$probe"
if ! "$cxx" -fsanitize=fuzzer,address,undefined "$probe" -o "$out/probe" 2>"$out/probe.log"; then
  cat "$out/probe.log" >&2
  echo "fuzz_gguf: $cxx cannot link libFuzzer (Debian: apt-get install libclang-rt-14-dev)" >&2
  exit 2
fi

sources=(common/gguf/gguf.cpp common/gguf/dequantize.cpp tests/gguf/fuzz_gguf.cpp)
echo "fuzz_gguf: building $out/fuzz_gguf with $("$cxx" --version | head -n 1)"
"$cxx" -std=c++20 -O1 -g -fno-omit-frame-pointer \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -Wall -Wextra -Icommon/gguf "${sources[@]}" -o "$out/fuzz_gguf"

model=$(python3 tools/fetch_model.py --check 2>/dev/null || true)
rm -rf "$out/seeds"
python3 tests/gguf/make_corpus.py "$out/seeds" ${model:+"$model"}

echo "fuzz_gguf: fuzzing for ${seconds} s"
# -max_len: seeds go up to 16 KiB (the model's header); -rss_limit_mb and
# -malloc_limit_mb turn an unbounded allocation into a reported failure.
"$out/fuzz_gguf" "$out/corpus" "$out/seeds" \
  -max_total_time="$seconds" -max_len=16384 -timeout=10 \
  -rss_limit_mb=2048 -malloc_limit_mb=512 \
  -artifact_prefix="$out/crashes/" -print_final_stats=1 >"$out/fuzz.log" 2>&1 && status=0 || status=$?
if [ "$status" -ne 0 ]; then
  tail -n 80 "$out/fuzz.log" >&2
  echo "fuzz_gguf: FAILED (libFuzzer exit $status); log in $out/fuzz.log, inputs in $out/crashes/" >&2
  exit 1
fi
grep -E '^(INFO: seed corpus|Done [0-9]+ runs|stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb))' \
  "$out/fuzz.log" || true
echo "fuzz_gguf: no crash in ${seconds} s"
