#!/usr/bin/env bash
# Why loading numpy before llama.cpp crashed a CUDA build (issue 28), on the GPU machine: the same short
# eval as shipped (llama.cpp first), with numpy imported first, and with each of numpy's own native
# libraries loaded alone before llama.cpp; then the crash's native stack under cuda-gdb and what the
# libraries link. Usage: load_order.sh MODEL TEXT (from device_run.sh's load-order part).
set -u
M=$1 TEXT=$2
ARGS=(eval "$M" -f "$TEXT" --ctx 512 --chunks 2 --json -q)
try() {  # LABEL PYTHON-PRELUDE
  local pre=$2
  timeout 180 python3 -c "$pre
import sys; sys.argv = ['ggufkit', *sys.argv[1:]]
from ggufkit.cli.app import main; main()" "${ARGS[@]}" > /tmp/lo.out 2> /tmp/lo.err
  echo "== $1: exit $?"
  grep -v "^$" /tmp/lo.err | tail -4
}
try "as shipped (ggufkit loads llama.cpp first)" ""
try "numpy imported first" "import numpy"
NUMPY=$(python3 -c 'import importlib.util, os; print(os.path.dirname(importlib.util.find_spec("numpy").origin))')
echo "numpy at $NUMPY"
for lib in "$NUMPY".libs/*.so* "$NUMPY"/_core/_multiarray_umath*.so; do
  [ -e "$lib" ] || continue
  try "only $(basename "$lib") first" "import ctypes; ctypes.CDLL('$lib')"
done
LIBLLAMA=$(python3 -c 'from ggufkit.loadorder import library_dir; print(library_dir())')
echo "== what they link"
for lib in "$NUMPY".libs/*.so* "$LIBLLAMA"/libggml-cuda.so "$LIBLLAMA"/libggml-cpu.so; do
  [ -e "$lib" ] && { echo "-- $lib"; ldd "$lib" | grep -vE "linux-vdso|ld-linux" | awk '{print "   " $1 " " $3}'; }
done
echo "== the crash under cuda-gdb (numpy first)"
if command -v cuda-gdb > /dev/null; then
  timeout 240 cuda-gdb -q -batch -ex run -ex bt -ex "info threads" --args python3 -c "import numpy, sys
sys.argv = ['ggufkit', *sys.argv[1:]]
from ggufkit.cli.app import main; main()" "${ARGS[@]}" 2>&1 | grep -vE "^\[(New|Thread|Detaching)|^warning:" | tail -60
fi
echo "== load order of each (LD_DEBUG=files)"
for pre in "" "import numpy"; do
  LD_DEBUG=files LD_DEBUG_OUTPUT=/tmp/ldd timeout 120 python3 -c "$pre
import sys; sys.argv = ['ggufkit', *sys.argv[1:]]
from ggufkit.cli.app import main; main()" "${ARGS[@]}" > /dev/null 2>&1
  echo "-- prelude '${pre}': libraries in load order"
  cat /tmp/ldd.* | sed -n 's/.*file=\([^ ]*\) *\[0\]; *\(dynamically loaded\|needed\).*/\1/p' | xargs -n1 basename | awk '!seen[$0]++' | tr '\n' ' '
  echo; rm -f /tmp/ldd.*
done
