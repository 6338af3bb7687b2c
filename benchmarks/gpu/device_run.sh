#!/usr/bin/env bash
# On the GPU machine (no network; run from the repo root with .gpukit/ carried, see prepare_kit.sh):
# build llama.cpp with CUDA from the vendored sources (reused while the machine stays warm), point
# llama-cpp-python's Python package at it, then measure, per PARTS (default: all of them, in this order):
#   runs-medium, runs-small   ggufkit run -ngl all in its variants, four times each, between two
#                             llama-bench -ngl 99 runs of the same model
#   bench-small               ggufkit bench GPU and CPU rows, both mmap modes, between two llama-bench
#                             -ngl 99 runs; llama-bench -ngl 0
#   bench-medium              ggufkit bench GPU rows at llama-bench's context (-p + -n) and at run's 4096
#   chat                      ggufkit run -i -ngl all over a pipe, with and without backend sampling
#   samples-bg                make the medium Q4_K_M and F16 samples and the 7B Q4_K_M one in the background (a
#                             new session: they outlive this call while the machine stays warm; log /tmp/samples-bg.log)
#   load-order                why numpy before llama.cpp crashed: each of numpy's native libraries loaded
#                             alone before llama.cpp, the crash under cuda-gdb, the linker's load order
#   tests                     the model-loading test files on this GPU build (GGUFKIT_TEST_SIZE=small);
#                             the log is gpu-tests.log
#   commands-medium           every model-loading command on the medium sample, -ngl all and on the CPU
#   eval-medium               eval base + Q2_K child, 16 chunks of 512, -ngl all, against llama-perplexity
#                             -ngl 99 (--kl-divergence-base, then the child): figures and wall times
#   imatrix-medium            imatrix -ngl all against llama-imatrix -ngl 99 and against ggufkit's CPU matrix
#   fit-medium                fit of the medium F16 sample (Q8_0, Q4_K_M) -ngl all, nvidia-smi sampled beside it
#   7b-eval                   the 7B sample: eval -ngl all against llama-perplexity -ngl 99 over 64 chunks, and a profile
#   7b-long                   the 7B sample: eval -ngl all against llama-perplexity -ngl 99 and imatrix -ngl all
#                             against llama-imatrix -ngl 99 over 64 chunks (start-up no longer dominates)
#   7b                        the 7B sample (Q4_K_M, made here; SEVEN_B=path reuses one): run -ngl all between
#                             llama-bench -ngl 99 runs, bench's GPU row, eval -ngl all against llama-perplexity
# small is the small sample Q4_K_M; medium the ~1B-parameter one (32k vocabulary), whose per-token costs
# outside the layers weigh as on real models. Results go to $OUT (default build/gpu); summarize.py turns
# them into summary.json.
set -euo pipefail
KIT=.gpukit
OUT="${OUT:-build/gpu}"
PARTS="${PARTS:-runs-medium bench-medium runs-small bench-small chat}"
MEDIUM="${MEDIUM:-medium}"  # the size the *-medium parts use (tiny: a quick check of this script anywhere)
T="${THREADS:-8}"
REPS="${REPS:-10}"
mkdir -p "$OUT" /tmp/site /tmp/pkg
[ -d /tmp/site/typer ] || python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$KIT"/wheels/*.whl
export PYTHONPATH="/tmp/pkg:/tmp/site:$PWD"
gk() { python3 -m ggufkit "$@"; }

B=/tmp/llama-cuda
FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"  # as the Makefile: AMX crashes where it is not really there
if [ ! -x "$B/bin/llama-bench" ]; then
  t0=$(date +%s)
  cmake -S "$KIT/src/llama.cpp" -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
    -DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}" -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON \
    -DCMAKE_C_FLAGS="$FLAGS" -DCMAKE_CXX_FLAGS="$FLAGS" > /tmp/cmake.log 2>&1
  cmake --build "$B" -j "$(nproc)" --target llama llama-bench llama-perplexity llama-imatrix \
    >> /tmp/cmake.log 2>&1 || { tail -30 /tmp/cmake.log; exit 1; }
  echo "build_seconds $(( $(date +%s) - t0 ))"
fi
rm -rf /tmp/pkg/llama_cpp && cp -r "$KIT/src/llama_cpp" /tmp/pkg/ && rm -rf /tmp/pkg/llama_cpp/lib && ln -s "$B/bin" /tmp/pkg/llama_cpp/lib
# bytecode compiled once, as a normal install has it: profiles of eval here showed 0.65 s, then 0.2 s of every
# run compiling sources, the second time the machine's own numpy (its folder holds no bytecode) and llama_cpp;
# PYTHONPYCACHEPREFIX keeps it all in one writable tree (the interpreter's own library is compiled there too)
export PYTHONPYCACHEPREFIX=/tmp/pycache
python3 -m compileall -q -j 0 /tmp/site /tmp/pkg ggufkit "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')" \
  "$(cd /tmp && python3 -c 'import numpy, os; print(os.path.dirname(numpy.__file__))')" > /dev/null 2>&1 || true
gk doctor | head -12
export PYTHONFAULTHANDLER=1
LB="$B/bin/llama-bench"

eval_text() {  # the default eval text as a file, for llama.cpp's tools
  [ -s "$TEXT" ] || python3 -c 'import sys; from ggufkit.evaluate.text import load_text; open(sys.argv[1], "w").write(load_text(None)[0])' "$TEXT"
}

made() {  # PATH TYPE SIZE -> PATH, made once per machine (waiting for samples-bg if it is making it)
  while pgrep -f "ggufkit sample $1" > /dev/null; do sleep 1; done
  [ -s "$1" ] || gk sample "$1" -t "$2" --size "$3" > /dev/null
  echo "$1"
}

sample() {  # SIZE -> path of its Q4_K_M sample
  made "/tmp/$1-q4_k_m.gguf" q4_k_m "$1"
}

llama_bench() {  # SIZE MODEL NGL: one JSON line per llama-bench run (the device returns at most 8 files)
  "$LB" -m "$2" -ngl "$3" -p 512 -n 128 -r "$REPS" -t "$T" -o json > /tmp/lb.json
  python3 -c 'import json,sys; print(json.dumps({"model": sys.argv[2], "ngl": int(sys.argv[3]), "results": json.load(open(sys.argv[1]))}))' \
    /tmp/lb.json "$1" "$3" >> "$OUT/llama-bench.jsonl"
}

runs() {  # SIZE MODEL: ggufkit run -ngl all, four times per variant, one JSON line each
  local size=$1 m=$2 variant args i
  set +e  # a failing run is a finding to record, not a reason to stop
  while IFS='|' read -r variant args; do
    for i in 1 2 3 4; do
      # shellcheck disable=SC2086
      if gk run "$m" -ngl all -p "hello the world" -n 128 -t "$T" --json $args > /tmp/run.json 2> /tmp/run.err; then
        python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d.pop("text"); d.pop("generated_ids");
print(json.dumps({"model": sys.argv[2], "variant": sys.argv[3], **d}))' /tmp/run.json "$size" "$variant" >> "$OUT/runs.jsonl"
      else
        { echo "== $size $variant run $i: exit $?"; tail -20 /tmp/run.err; } >> "$OUT/diag.log"
      fi
    done
  done <<'EOF'
greedy (sampled in the graph by default)|--temp 0
greedy, --ctx 256 (llama-bench's tg128 context)|--temp 0 --ctx 256
greedy, sampled on the CPU|--temp 0 --no-backend-sampling
default chain (sampled on the CPU)|--seed 1
default chain, sampled in the graph|--seed 1 --backend-sampling
EOF
  set -e
}

for part in $PARTS; do
  case $part in
    runs-*)
      size=${part#runs-}; M=$(sample "$size")
      llama_bench "$size" "$M" 99
      runs "$size" "$M"
      llama_bench "$size" "$M" 99 ;;
    bench-small)
      M=$(sample small)
      llama_bench small "$M" 99
      gk bench "$M" --gpu both --mmap both -p 512 -n 128 -r "$REPS" -t "$T" --format json -o "$OUT/bench-small.json" --force -q > /dev/null
      llama_bench small "$M" 99
      llama_bench small "$M" 0 ;;
    bench-medium)
      M=$(sample medium)
      gk bench "$M" --gpu on --mmap on -p 512 -n 128 -r "$REPS" -t "$T" --format json -o "$OUT/bench-medium.json" --force -q > /dev/null
      gk bench "$M" --gpu on --mmap on -p 512 -n 128 -r "$REPS" -t "$T" --ctx 4096 --format json -o "$OUT/bench-medium-ctx4096.json" --force -q > /dev/null ;;
    chat)
      M=$(sample small)
      turns=$'hello the world\n/set temp 0\nthe world\n/set top_k 3\nhello\n/show\n/exit\n'
      for extra in "" "--backend-sampling"; do
        # shellcheck disable=SC2086
        { echo "== ggufkit run -i -ngl all --template chatml --stats $extra"
          printf '%s' "$turns" | gk run "$M" -i -ngl all -n 32 --seed 4 --template chatml --stats -t "$T" $extra 2>&1
          echo "== exit $?"; } >> "$OUT/chat-gpu.txt" || true
      done ;;
    load-order)
      M=$(sample small); TEXT=/tmp/eval-text.txt; eval_text
      bash benchmarks/gpu/load_order.sh "$M" "$TEXT" > "$OUT/load-order.txt" 2>&1 || true ;;
    tests)
      # every test file whose tests load a model on this build, -ngl all included; the tests of the real models
      # need the package index, which this machine cannot reach (-k leaves them out); DEADLINE: seconds since
      # this script started by which pytest must end (a device call lasts 10 minutes)
      set +e
      # no plugins from the machine's own Python (its jaxtyping plugin imports numpy before ggufkit can order it)
      PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 GGUFKIT_TEST_SIZE=small timeout $(( ${DEADLINE:-560} - SECONDS )) python3 -m pytest -q -p no:cacheprovider \
        --durations=15 -k "not smollm2 and not real_model" \
        ${TESTS:-tests/test_every_command_offloads.py tests/test_load_order.py tests/test_eval.py tests/test_run_decode_paths.py \
        tests/test_imatrix.py tests/test_fit.py tests/test_bench.py tests/test_interrupts.py tests/test_run.py} \
        ${EXTRA_TESTS:-} > "$OUT/gpu-tests.log" 2>&1
      echo "pytest exit $?" >> "$OUT/gpu-tests.log"; tail -5 "$OUT/gpu-tests.log"
      set -e ;;
    samples-bg)
      setsid nohup bash -c "python3 -m ggufkit sample /tmp/medium-q4_k_m.gguf -t q4_k_m --size medium; \
        python3 -m ggufkit sample /tmp/medium-f16.gguf -t f16 --size medium; \
        t0=\$(date +%s); python3 -m ggufkit sample /tmp/7b-q4_k_m.gguf -t q4_k_m --size 7b; \
        echo \"7b q4_k_m: \$(( \$(date +%s) - t0 )) s\"" > /tmp/samples-bg.log 2>&1 < /dev/null &
      echo "samples started in the background" ;;
    commands-medium)
      M=$(sample "$MEDIUM"); TEXT=/tmp/eval-text.txt; eval_text
      bash benchmarks/gpu/commands.sh "$M" "$TEXT" "$T" > "$OUT/commands-medium.txt" 2>&1 || true
      grep -E "^(==|exit)" "$OUT/commands-medium.txt" | paste - - | tail -30 ;;
    eval-medium)
      M=$(sample "$MEDIUM"); Q=/tmp/$MEDIUM-q2_k.gguf; TEXT=/tmp/eval-text.txt; eval_text
      [ -s "$Q" ] || gk quantize "$M" -t q2_k -o "$Q" --allow-requantize -q
      python3 benchmarks/gpu/eval_gpu.py "$B/bin" "$M" "$Q" "$TEXT" "$T" > "$OUT/eval-medium.json" ;;
    imatrix-medium)
      M=$(sample "$MEDIUM"); TEXT=/tmp/eval-text.txt; eval_text
      python3 benchmarks/gpu/imatrix_gpu.py "$B/bin" "$M" "$TEXT" "$T" 8 > "$OUT/imatrix-medium.json" ;;
    fit-medium)
      F=$(made "/tmp/$MEDIUM-f16.gguf" f16 "$MEDIUM")
      TEXT=/tmp/eval-text.txt; eval_text
      nvidia-smi --query-gpu=timestamp,memory.used --format=csv,noheader,nounits -lms 100 > "$OUT/fit-smi.csv" &
      SMI=$!
      GGUFKIT_CACHE=/tmp/fitgpu gk fit "$F" -t q8_0 -t q4_k_m --ctx 512 --chunks 2 -f "$TEXT" -ngl all --threads "$T" \
        --json > "$OUT/fit-medium.json" 2> "$OUT/fit-medium.txt" || true
      kill $SMI || true
      gk run "$F" -ngl all --ctx 512 -p hi -n 8 --verbose-llama 2>&1 | grep -iE "buffer size|offloaded" >> "$OUT/fit-medium.txt" || true ;;
    7b-eval)
      M7=${SEVEN_B:-/tmp/7b-q4_k_m.gguf}; TEXT=/tmp/eval-text.txt; eval_text
      [ -s "$M7" ] || gk sample "$M7" --size 7b -t q4_k_m > /dev/null
      python3 benchmarks/gpu/eval_one.py "$B/bin" "$M7" "$TEXT" "$T" 64 > "$OUT/eval-7b-64.json"
      python3 -m cProfile -o "$OUT/eval-7b-64.prof" -m ggufkit eval "$M7" -f "$TEXT" --ctx 512 --chunks 64 -t "$T" \
        -ngl all --json -q > /dev/null ;;
    7b-long)
      M7=${SEVEN_B:-/tmp/7b-q4_k_m.gguf}; TEXT=/tmp/eval-text.txt; eval_text
      while pgrep -f "ggufkit sample /tmp/7b" > /dev/null; do sleep 2; done
      [ -s "$M7" ] || gk sample "$M7" --size 7b -t q4_k_m > /dev/null
      python3 benchmarks/gpu/eval_one.py "$B/bin" "$M7" "$TEXT" "$T" 64 > "$OUT/eval-7b-64.json"
      IMATRIX_CPU=0 python3 benchmarks/gpu/imatrix_gpu.py "$B/bin" "$M7" "$TEXT" "$T" 64 > "$OUT/imatrix-7b-64.json"
      # where eval's time goes beyond llama-perplexity's: a profile of one run (python -m pstats reads it)
      python3 -m cProfile -o "$OUT/eval-7b-64.prof" -m ggufkit eval "$M7" -f "$TEXT" --ctx 512 --chunks 64 -t "$T" \
        -ngl all --json -q > /dev/null ;;
    7b)
      M7=${SEVEN_B:-/tmp/7b-q4_k_m.gguf}; TEXT=/tmp/eval-text.txt; eval_text
      while pgrep -f "ggufkit sample /tmp/7b" > /dev/null; do sleep 2; done  # samples-bg still making it
      cat /tmp/samples-bg.log 2> /dev/null | tail -2
      if [ ! -s "$M7" ]; then
        t0=$(date +%s); gk sample "$M7" --size 7b -t q4_k_m > /dev/null; echo "sample 7b q4_k_m: $(( $(date +%s) - t0 )) s"
      fi
      llama_bench 7b "$M7" 99
      set +e
      for i in 1 2 3; do
        for args in "--temp 0" "--temp 0 --ctx 256"; do
          # shellcheck disable=SC2086
          gk run "$M7" -ngl all -p "hello the world" -n 128 -t "$T" --json $args > /tmp/run.json 2> /tmp/run.err &&
            python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d.pop("text"); d.pop("generated_ids");
print(json.dumps({"model": "7b", "variant": sys.argv[2], **d}))' /tmp/run.json "$args" >> "$OUT/runs.jsonl"
        done
      done
      set -e
      llama_bench 7b "$M7" 99
      gk bench "$M7" --gpu on -p 512 -n 128 -r 5 -t "$T" --format json -o "$OUT/bench-7b.json" --force -q > /dev/null
      python3 benchmarks/gpu/eval_one.py "$B/bin" "$M7" "$TEXT" "$T" 8 > "$OUT/eval-7b.json" ;;
    *) echo "unknown part $part" >&2; exit 2 ;;
  esac
done
python3 benchmarks/gpu/summarize.py "$OUT"
