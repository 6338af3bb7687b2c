#!/usr/bin/env bash
# Every model-loading command on one model, with -ngl all and on the CPU: exit code and seconds of each
# (issue 28: no command may crash on a CUDA build). Usage: commands.sh MODEL TEXT THREADS.
set -u
M=$1 TEXT=$2 T=$3
W=/tmp/commands; rm -rf "$W"; mkdir -p "$W"
gk() { python3 -m ggufkit "$@"; }
one() {  # LABEL COMMAND...
  local label=$1; shift
  local t0; t0=$(date +%s.%N)
  "$@" > "$W/out" 2> "$W/err" < "${STDIN:-/dev/null}"
  local rc=$?
  echo "== $label"
  echo "exit $rc, $(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$t0" "$(date +%s.%N)") s"
  [ $rc = 0 ] || tail -3 "$W/err"
}
printf 'hello there\n/set temp 0\nand again\n/exit\n' > "$W/chat.txt"
one "inspect" gk inspect "$M"
for ngl in all 0; do
  one "run -ngl $ngl" gk run "$M" -p "hello the world" -n 64 --temp 0 -ngl "$ngl" -t "$T" --json
  STDIN="$W/chat.txt" one "run -i over a pipe -ngl $ngl" gk run "$M" -i -n 16 -ngl "$ngl" -t "$T"
  if [ "$ngl" = all ]; then gpu=(--gpu on -ngl all); else gpu=(--gpu off); fi
  one "bench ${gpu[*]}" gk bench "$M" -p 512 -n 64 -r 2 -t "$T" "${gpu[@]}" --format json -q
  one "eval (two models) -ngl $ngl" gk eval "$M" "$M" -f "$TEXT" --chunks 4 -ngl "$ngl" -t "$T" --json -q
  one "quantize --eval -ngl $ngl" gk quantize "$M" -t q4_0 -o "$W/q.gguf" --allow-requantize --force \
    --eval "$TEXT" --eval-chunks 2 -ngl "$ngl" --json -q
done
for ngl in all 0; do
  one "run A B -ngl $ngl" gk run "$M" "$W/q.gguf" -p "hello the world" -n 16 --temp 0 -ngl "$ngl" -t "$T" --json
  one "imatrix -ngl $ngl" gk imatrix "$M" -f "$TEXT" --chunks 2 -ngl "$ngl" -t "$T" -o "$W/m.gguf" --force -q
  one "fit -ngl $ngl" env GGUFKIT_CACHE="$W/cache" python3 -m ggufkit fit "$M" -t q8_0 --chunks 2 -r 1 -f "$TEXT" \
    -ngl "$ngl" --threads "$T" --json -q
done
