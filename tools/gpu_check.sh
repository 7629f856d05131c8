#!/usr/bin/env bash
# The CUDA lessons (08-10) on a real NVIDIA GPU, in one call: build with nvcc, run the
# tests, run them under compute-sanitizer (memcheck, racecheck, synccheck), then the
# benchmarks and the PyTorch baselines.
#
#   tools/gpu_check.sh pack     on a machine with Debian's xtensor, xtl, xsimd and doctest:
#                               copies their headers into .device/ (git-ignored), with small
#                               CMake package files, for a GPU machine that lacks them
#   tools/gpu_check.sh          on the GPU machine: everything; logs under $OUT
#                               (default build/gpu-check), a summary table at the end
#   tools/gpu_check.sh quick    the same without the sanitizers
#
# The benchmarks write bench_flash.json, bench_decode.json, sdpa_09.json and sdpa_10.json
# under $OUT; back on the development machine, `python3 benchmarks/gpu_report.py DIR`
# (DIR: where those files came back) writes the numbers into the lesson READMEs.
#
# Only the CUDA lessons of lessons/manifest.json ("cuda": true) and the lessons they use
# are built (ATTN_LESSONS; 01-04 and 08-10 today): lesson 07 needs OpenBLAS and the
# docs need Doxygen, which a GPU machine may not have. Nothing here changes the GPU's
# settings. Exit status: non-zero if a build, a test or a sanitizer failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
device=.device

if [ "${1:-}" = pack ]; then
  rm -rf "$device"
  mkdir -p "$device/include" "$device/cmake"
  for pkg in xtensor xtl xsimd doctest; do cp -r "/usr/include/$pkg" "$device/include/"; done
  for pkg in xtl xsimd xtensor; do
    mkdir -p "$device/cmake/$pkg"
    cat >"$device/cmake/$pkg/${pkg}Config.cmake" <<EOF
# Header-only $pkg, carried from /usr/include by tools/gpu_check.sh pack.
if(NOT TARGET $pkg)
  add_library($pkg INTERFACE IMPORTED)
  set_target_properties($pkg PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "\${CMAKE_CURRENT_LIST_DIR}/../../include")
endif()
EOF
  done
  echo 'set_property(TARGET xtensor APPEND PROPERTY INTERFACE_LINK_LIBRARIES xtl xsimd)' \
    >>"$device/cmake/xtensor/xtensorConfig.cmake"
  mkdir -p "$device/cmake/doctest"
  cp /usr/lib/cmake/doctest/doctest.cmake /usr/lib/cmake/doctest/doctestAddTests.cmake "$device/cmake/doctest/"
  cat >"$device/cmake/doctest/doctestConfig.cmake" <<'EOF'
# Header-only doctest, carried from /usr/include by tools/gpu_check.sh pack.
if(NOT TARGET doctest::doctest)
  list(APPEND CMAKE_MODULE_PATH "${CMAKE_CURRENT_LIST_DIR}")
  add_library(doctest::doctest INTERFACE IMPORTED)
  set_target_properties(doctest::doctest PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${CMAKE_CURRENT_LIST_DIR}/../../include")
endif()
EOF
  du -sh "$device"
  exit 0
fi

sanitize=1
[ "${1:-}" = quick ] && sanitize=0
out=${OUT:-build/gpu-check}
mkdir -p "$out"
rows=()
failed=0

# step NAME COMMAND...: runs COMMAND with its output in $out/NAME.log; records the result and time.
step() {
  local name=$1
  shift
  local log="$out/${name// /_}.log" start=$SECONDS
  "$@" >"$log" 2>&1 </dev/null
  local rc=$?
  local result=ok
  if [ "$rc" -ne 0 ]; then result="FAIL ($rc)"; failed=1; fi
  rows+=("$(printf '  %-34s %-10s %5ds' "$name" "$result" $((SECONDS - start)))")
  return "$rc"
}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv >"$out/gpu.txt" 2>&1
nvcc --version | tail -2 >>"$out/gpu.txt" 2>&1

deps=()
if [ -d "$device/cmake" ]; then
  for pkg in xtl xsimd xtensor doctest; do deps+=("-D${pkg}_DIR=$PWD/$device/cmake/$pkg"); done
fi
build=build/gpu-check
# From the manifest: the folders of the CUDA lessons, and every lesson they need (NN;NN;...).
manifest() {
  python3 - "$1" <<'PY'
import json, sys
lessons = json.load(open("lessons/manifest.json"))["lessons"]
cuda = [l for l in lessons if l["cuda"]]
if sys.argv[1] == "folders":
    print(" ".join(l["folder"] for l in cuda))
else:
    print(";".join(sorted({l["nn"] for l in cuda} | {u for l in cuda for u in l["uses"]})))
PY
}
read -r -a lessons <<<"$(manifest folders)"
needed=$(manifest needed)
targets=()
for lesson in "${lessons[@]}"; do targets+=("test_$lesson"); done
if step configure cmake -S . -B "$build" -G Ninja -DATTN_TREE=solutions -DATTN_CUDA_GPU=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DATTN_LESSONS=$needed" \
    "${deps[@]}" &&
  step build cmake --build "$build" --target "${targets[@]}" bench_flash bench_decode; then
  for lesson in "${lessons[@]}"; do
    exe="$build/tests/$lesson/test_$lesson"
    step "test ${lesson:0:2}" "$exe"
    if [ "$sanitize" = 1 ]; then
      for tool in memcheck racecheck synccheck; do
        step "$tool ${lesson:0:2}" compute-sanitizer --tool "$tool" --error-exitcode 1 "$exe"
      done
    fi
  done
  step bench_flash "$build/benchmarks/09_cuda_flash_attention/bench_flash" "$out/bench_flash.json"
  step bench_decode "$build/benchmarks/10_cuda_gqa_decode/bench_decode" "$out/bench_decode.json"
fi
step "sdpa baseline 09" python3 benchmarks/09_cuda_flash_attention/sdpa_baseline.py --json "$out/sdpa_09.json"
step "sdpa baseline 10" python3 benchmarks/10_cuda_gqa_decode/sdpa_baseline.py --json "$out/sdpa_10.json"

echo "logs and results: $out (then: python3 benchmarks/gpu_report.py <that folder>)"
cat "$out/gpu.txt"
for name in bench_flash bench_decode sdpa_baseline_09 sdpa_baseline_10; do
  [ -f "$out/$name.log" ] && { echo; echo "== $name"; tail -n 30 "$out/$name.log"; }
done
echo
printf '  %-34s %-10s %6s\n' step result time
printf '%s\n' "${rows[@]}"
exit "$failed"
