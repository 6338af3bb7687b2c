#!/usr/bin/env bash
# Build llama.cpp's own llama-quantize, llama-bench, llama-perplexity, llama-imatrix and llama-gguf-split from the sources vendored in the llama-cpp-python
# sdist of the version pyproject.toml pins, so benchmarks compare ggufkit with the exact same llama.cpp.
# Built once into ~/.cache/ggufkit/llama-tools/<version>/ (outside the repo) and reused; prints the bin dir.
# `llama_tools.sh rpc`: llama-bench and rpc-server built with the RPC backend (-DGGML_RPC=ON), the reference
# of benchmarks/rpc_bench.py, into <version>-rpc/ with its own stamp, so the tools above are not rebuilt.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="$(sed -n 's/.*"llama-cpp-python==\([^"]*\)".*/\1/p' "$ROOT/pyproject.toml")"
[ -n "$VERSION" ] || { echo "llama_tools.sh: no llama-cpp-python pin in pyproject.toml" >&2; exit 2; }
CACHE="${GGUFKIT_LLAMA_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/ggufkit/llama-tools}"
DEST="$CACHE/$VERSION"
VARIANT="${1:-}"
case "$VARIANT" in
  "") EXTRA="" ;;
  rpc) EXTRA="-DGGML_RPC=ON"; DEST="$CACHE/$VERSION-rpc" ;;
  *) echo "llama_tools.sh: unknown variant '$VARIANT' (none, or rpc)" >&2; exit 2 ;;
esac
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY=python3

# Same reason as the Makefile: ggml's AMX kernels crash on CPUs that report AMX without providing it.
FLAGS=""
if [ "$(uname -m)" = x86_64 ] && [ "${GGUFKIT_AMX:-off}" = off ]; then
  FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
fi
TARGETS="llama-quantize llama-bench llama-perplexity llama-imatrix llama-gguf-split"
[ "$VARIANT" = rpc ] && TARGETS="llama-bench ggml-rpc-server"  # tools/rpc builds its program as ggml-rpc-server
STAMP="shared release flags=[$FLAGS] targets=[$TARGETS]${EXTRA:+ extra=[$EXTRA]}"  # a cache built another way is rebuilt

built() {
  [ "$(cat "$DEST/stamp" 2>/dev/null)" = "$STAMP" ] && for t in $TARGETS; do [ -x "$DEST/bin/$t" ] || return 1; done
}
if built; then
  echo "$DEST/bin"
  exit 0
fi
# Several benchmarks may ask at once: one builds, the others wait for it and reuse its result.
mkdir -p "$CACHE"
if command -v flock >/dev/null; then
  exec 9>"$CACHE/.lock"
  flock 9
  if built; then
    echo "$DEST/bin"
    exit 0
  fi
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ggufkit-llama-tools.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
echo "llama_tools.sh: building $TARGETS from llama-cpp-python $VERSION (several minutes)" >&2
"$PY" -m pip download -q --no-deps --no-binary :all: -d "$WORK/sdist" "llama-cpp-python==$VERSION" >&2
tar -xzf "$WORK"/sdist/llama_cpp_python-*.tar.gz -C "$WORK"
SRC="$(echo "$WORK"/llama_cpp_python-*/vendor/llama.cpp)"
# Shared libraries, as llama-cpp-python builds them (and llama.cpp by default), so a timing compares the
# same machine code; $ORIGIN lets the executables find them beside themselves in the cache.
cmake -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
  -DCMAKE_BUILD_RPATH='$ORIGIN' -DCMAKE_BUILD_RPATH_USE_ORIGIN=ON \
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=ON $EXTRA \
  -DCMAKE_C_FLAGS="$FLAGS" -DCMAKE_CXX_FLAGS="$FLAGS" >&2
cmake --build "$WORK/build" --config Release -j "$(nproc)" --target $TARGETS >&2
PART="$DEST.part.$$"
mkdir -p "$PART/bin"
for t in $TARGETS; do cp -P "$WORK/build/bin/$t" "$PART/bin/"; done
cp -P "$WORK"/build/bin/lib*.so* "$PART/bin/"
echo "$STAMP" > "$PART/stamp"
"$PART/bin/llama-bench" --help >/dev/null 2>&1 || [ $? = 1 ]  # usage may exit 1; a missing library would be 127
rm -rf "$DEST"
mv "$PART" "$DEST"
echo "$DEST/bin"
