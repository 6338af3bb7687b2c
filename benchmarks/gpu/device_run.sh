#!/usr/bin/env bash
# On the GPU machine (no network; run from the repo root with .gpukit/ carried, see prepare_kit.sh):
# build llama.cpp with CUDA from the vendored sources, point llama-cpp-python's Python package at it,
# then measure ggufkit bench (GPU and CPU rows, both mmap modes), llama-bench -ngl 99 on the same
# build, and ggufkit run -ngl all. Results go to $OUT (default build/gpu).
set -euo pipefail
KIT=.gpukit
OUT="${OUT:-build/gpu}"
mkdir -p "$OUT" /tmp/site /tmp/pkg
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$KIT"/wheels/*.whl
B=/tmp/llama-cuda
FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"  # as the Makefile: AMX crashes where it is not really there
t0=$(date +%s)
cmake -S "$KIT/src/llama.cpp" -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
  -DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}" -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON \
  -DCMAKE_C_FLAGS="$FLAGS" -DCMAKE_CXX_FLAGS="$FLAGS" > "$OUT/cmake.log" 2>&1
cmake --build "$B" -j "$(nproc)" --target llama llama-bench >> "$OUT/cmake.log" 2>&1
echo "build_seconds $(( $(date +%s) - t0 ))" | tee "$OUT/build.txt"
rm -f "$OUT/cmake.log"
cp -r "$KIT/src/llama_cpp" /tmp/pkg/ && rm -rf /tmp/pkg/llama_cpp/lib && ln -s "$B/bin" /tmp/pkg/llama_cpp/lib
export PYTHONPATH="/tmp/pkg:/tmp/site:$PWD"
gk() { python3 -m ggufkit "$@"; }
gk doctor | tee "$OUT/doctor.txt"
if [ -n "${DIAG:-}" ]; then . "$DIAG"; exit 0; fi
M=/tmp/small-q4_k_m.gguf
gk sample "$M" -t q4_k_m --size small --force
T="${THREADS:-8}"
gk bench "$M" --gpu both --mmap both -p 512 -n 128 -r 5 -t "$T" --format json -o "$OUT/bench.json" --force -q > /dev/null
"$B/bin/llama-bench" -m "$M" -ngl 99 -p 512 -n 128 -r 5 -t "$T" -o json > "$OUT/llama-bench-gpu.json"
"$B/bin/llama-bench" -m "$M" -ngl 0 -p 512 -n 128 -r 5 -t "$T" -o json > "$OUT/llama-bench-cpu.json"
export PYTHONFAULTHANDLER=1
set +e  # a failing run is a finding to record, not a reason to stop
: > "$OUT/run-gpu.jsonl"
for i in 1 2 3; do
  if gk run "$M" -ngl all -p "hello the world" -n 128 --temp 0 -t "$T" --json > /tmp/run.json 2> /tmp/run.err; then
    python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))))' /tmp/run.json >> "$OUT/run-gpu.jsonl"
  else
    { echo "== run $i -ngl all -t $T: exit $?"; tail -20 /tmp/run.err; } >> "$OUT/diag.log"
  fi
done
if [ -s "$OUT/diag.log" ]; then  # narrow it down
  for args in "-ngl all -t 1" "-ngl 0 -t $T" "-ngl 10 -t $T"; do
    # shellcheck disable=SC2086
    gk run "$M" $args -p "hello the world" -n 16 --temp 0 > /tmp/d.out 2> /tmp/d.err
    { echo "== run $args: exit $?"; tail -c 300 /tmp/d.out; echo; tail -12 /tmp/d.err; } >> "$OUT/diag.log"
  done
  for abort in 0 1; do
    python3 - "$M" "$abort" > /tmp/d.out 2>&1 <<'PY'
import sys
from pathlib import Path
from ggufkit.runtime import abort
from ggufkit.runtime.model import load
from ggufkit.runtime.params import LoadParams
if sys.argv[2] == "1":
    print("abort.install:", abort.install(sys.argv[1]), flush=True)
with load(LoadParams(path=Path(sys.argv[1]), n_ctx=256, n_threads=8, n_batch=512, n_gpu_layers=-1)) as m:
    print("loaded", m.n_vocab, flush=True)
PY
    { echo "== load with abort.install=$abort: exit $?"; tail -12 /tmp/d.out; } >> "$OUT/diag.log"
  done
fi
python3 benchmarks/gpu/summarize.py "$OUT" | tee "$OUT/summary.txt"
