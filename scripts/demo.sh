#!/usr/bin/env bash
# The main job end to end on freshly made samples (make, inspect, convert, quantize, run, bench), then a
# real exchange: SmolLM2-135M-Instruct answers through its own chat template, as the Q4_1 file its package
# ships and as a Q4_K_M child of its F16 base (`make models` pulled both), and bench measures the child.
set -euo pipefail
dir=${1:-build/demo}
gk=".venv/bin/ggufkit"
mkdir -p "$dir"
# Each command is shown as it can be pasted back: words with spaces or quotes are single-quoted.
quote() {
  local a out=()
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./=:,+@%-]+$ ]]; then out+=("$a"); else out+=("'${a//\'/\'\\\'\'}'"); fi
  done
  printf '%s' "${out[*]}"
}
step() { printf '\n\033[1m$ %s\033[0m\n' "$(quote "$@")"; "$@"; }

step $gk sample "$dir/tiny-q4_k_m.ggmlv3.bin" --type q4_k_m --format ggjt3 --force
step $gk inspect "$dir/tiny-q4_k_m.ggmlv3.bin"
step $gk sample "$dir/tiny-f16.gguf" --type f16 --force
step $gk inspect "$dir/tiny-f16.gguf" --ctx 2048
step $gk convert "$dir/tiny-q4_k_m.ggmlv3.bin" -o "$dir/tiny-q4_k_m.gguf" --eps 1e-5 --force --verify
step $gk inspect "$dir/tiny-q4_k_m.gguf"
step $gk quantize "$dir/tiny-f16.gguf" -t q4_k_m -t q8_0 --out-dir "$dir" --force
step $gk run "$dir/tiny-Q4_K_M.gguf" -p "hello the world" -n 16 --temp 0 --stats
step $gk bench "$dir/tiny-Q4_K_M.gguf" "$dir/tiny-q4_k_m.ggmlv3.bin" -p 64 -n 16 -r 5 --mmap both --format md
echo "(the tiny sample decodes a token in ~0.1 ms, so one scheduler tick moves these figures: they show that"
echo " bench works, not how fast llama.cpp is; \`make bench\` measures the 65 MB small sample against llama-bench)"
step $gk doctor

question="What is the capital of Japan?"
printf '\n\033[1m$ %s\033[0m\n' "$gk models pull smollm2 --f16"
{ read -r smollm2; read -r smollm2_f16; } < <($gk models pull smollm2 --f16 | tee /dev/stderr)
step $gk inspect "$smollm2"
step $gk run "$smollm2" --chat -p "$question" --temp 0 -n 48 --ctx 512 --stats
step $gk quantize "$smollm2_f16" -t q4_k_m -o "$dir/smollm2-q4_k_m.gguf" --force
step $gk run "$dir/smollm2-q4_k_m.gguf" --chat -p "$question" --temp 0 -n 48 --ctx 512 --stats
step $gk bench "$dir/smollm2-q4_k_m.gguf" -p 128 -n 32 -r 2 --format md
