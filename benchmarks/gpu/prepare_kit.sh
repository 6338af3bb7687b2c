#!/usr/bin/env bash
# Here (with network): gather what the GPU machine needs, since it has none: the llama-cpp-python
# sdist of the pinned version (shrunk: no docs, models, web assets) and Python 3.12 wheels of the
# pure dependencies. Result: .gpukit/ at the repo root (git-ignored), carried by the device call.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VERSION="$(sed -n 's/.*"llama-cpp-python==\([^"]*\)".*/\1/p' "$ROOT/pyproject.toml")"
KIT="$ROOT/.gpukit"
PY="$ROOT/.venv/bin/python"
rm -rf "$KIT" && mkdir -p "$KIT/wheels"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
"$PY" -m pip download -q --no-deps --no-binary :all: -d "$WORK" "llama-cpp-python==$VERSION"
tar -xzf "$WORK"/llama_cpp_python-*.tar.gz -C "$WORK"
SRC="$WORK/llama_cpp_python-$VERSION"
V="$SRC/vendor/llama.cpp"
rm -rf "$V/models" "$V/docs" "$V/media" "$V/tools/server" "$V/examples" "$V/benches" "$V/tests" "$V/gguf-py" \
       "$V/ggml/src/ggml-vulkan" "$V/ggml/src/ggml-sycl" "$V/ggml/src/ggml-cann" "$V/ggml/src/ggml-opencl" \
       "$V/ggml/src/ggml-musa" "$V/ggml/src/ggml-webgpu" "$V/ggml/src/ggml-hexagon" "$V/ggml/src/ggml-openvino" \
       "$V/ggml/src/ggml-et" "$V/ggml/src/ggml-metal" "$V/tools/ui" "$SRC/docs" "$SRC/examples" "$SRC/tests"
mkdir -p "$KIT/src" && cp -r "$SRC/llama_cpp" "$V" "$KIT/src/"
# The dependencies the GPU machine's Python 3.12 lacks or may lack (numpy is there), and pytest for the GPU test run.
"$PY" -m pip freeze 2>/dev/null | grep -iE '^(typer|click|gguf|tqdm|rich|jinja2|markupsafe|pyyaml|shellingham|annotated-doc|typing.extensions|diskcache|pygments|markdown-it-py|mdurl|requests|certifi|idna|urllib3|charset-normalizer|pytest|pluggy|iniconfig|packaging)==' > "$WORK/reqs.txt"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$KIT/wheels" -r "$WORK/reqs.txt"
du -sh "$KIT"
