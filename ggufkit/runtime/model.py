"""A model and a context opened through llama.cpp's C API, with the few vocabulary helpers a run needs.

`load(params)` is the one way `run` and `bench` open a model. The file must already have passed the
project's reader (see `prepare.prepare_model`), so llama.cpp only sees headers we have checked.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass, field

from ggufkit.errors import BadInputError, GgufkitError, LlamaFailure
from ggufkit.runtime import abort, llama_log, threadpool
from ggufkit.runtime.params import LoadParams
from ggufkit.system import GPU_LAYERS_IGNORED

_PIECE_BYTES = 256


@dataclass
class Model:
    """An open llama.cpp model + context. Use as a context manager, or call close()."""

    params: LoadParams
    model: object  # llama_model_p
    ctx: object  # llama_context_p
    vocab: object  # llama_vocab_p
    n_vocab: int
    n_ctx: int
    load_ms: float  # opening the file and creating the context, warm-up included
    warnings: list[str] = field(default_factory=list)
    warmup_ms: float = 0.0
    all_on_gpu: bool = False  # every layer and the output layer offloaded to a local GPU
    devices: list = field(default_factory=list)  # rpc.Device: the offload devices given to llama.cpp (with --rpc)
    _lora: object = None
    _pool: int | None = None  # the ggml threadpool attached to ctx
    _piece_buf: ctypes.Array = field(default_factory=lambda: ctypes.create_string_buffer(_PIECE_BYTES))
    pieces: dict[int, bytes] = field(default_factory=dict)  # token -> piece(token), filled as generation meets them

    @property
    def lib(self):
        import llama_cpp

        return llama_cpp

    @property
    def memory(self):
        return self.lib.llama_get_memory(self.ctx)

    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]:
        return _tokenize(self.vocab, text, add_special, parse_special, self.params.path)

    def piece(self, token: int, special: bool = False) -> bytes:
        """The bytes of one token (possibly part of a UTF-8 character)."""
        n = self.lib.llama_token_to_piece(self.vocab, token, self._piece_buf, _PIECE_BYTES, 0, special)
        if n < 0:
            big = ctypes.create_string_buffer(-n)
            n = self.lib.llama_token_to_piece(self.vocab, token, big, -n, 0, special)
            return big.raw[:n]
        return self._piece_buf.raw[:n]

    def clear_memory(self, from_pos: int = 0) -> None:
        """Forget the KV cache from position `from_pos` on."""
        if from_pos <= 0:
            self.lib.llama_memory_clear(self.memory, True)
        elif not self.lib.llama_memory_seq_rm(self.memory, 0, from_pos, -1):
            self.lib.llama_memory_clear(self.memory, True)
            raise LlamaFailure("llama.cpp could not trim its KV cache", self.params.path)

    def renew_context(self, n_ctx: int) -> None:
        """Replace the context by a fresh one of `n_ctx` tokens on the same weights (llama-bench makes one
        per test, sized to it). Raises LlamaFailure, leaving no context, if llama.cpp refuses."""
        self._free_context()
        self.ctx, self._pool = _new_context(self.lib, self.model, self.params, n_ctx, self._lora)
        self.n_ctx = self.lib.llama_n_ctx(self.ctx)

    def _free_context(self) -> None:
        if self.ctx:
            self.lib.llama_free(self.ctx)
            self.ctx = None
        threadpool.free(self._pool)
        self._pool = None

    def close(self) -> None:
        L = self.lib
        self._free_context()
        if self._lora:
            L.llama_adapter_lora_free(self._lora)
            self._lora = None
        if self.model:
            L.llama_model_free(self.model)
            self.model = None

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _tokenize(vocab, text: str, add_special: bool, parse_special: bool, path) -> list[int]:
    import llama_cpp as L

    data = text.encode("utf-8")
    cap = len(data) + 8
    buf = (L.llama_token * cap)()
    n = L.llama_tokenize(vocab, data, len(data), buf, cap, add_special, parse_special)
    if n < 0:
        cap = -n
        buf = (L.llama_token * cap)()
        n = L.llama_tokenize(vocab, data, len(data), buf, cap, add_special, parse_special)
    if n < 0:
        raise LlamaFailure("llama.cpp could not tokenize the text", path)
    return list(buf[:n])


@dataclass
class Vocabulary:
    """A model file's vocabulary alone (llama.cpp's vocab_only load: the header, no weights), to tokenize a
    text while the weights load in another thread (eval and imatrix). Close it, or use it in a with."""

    path: object
    model: object  # llama_model_p, vocab only
    vocab: object  # llama_vocab_p

    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]:
        return _tokenize(self.vocab, text, add_special, parse_special, self.path)

    def close(self) -> None:
        if self.model:
            import llama_cpp as L

            L.llama_model_free(self.model)
            self.model = None

    def __enter__(self) -> Vocabulary:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_vocabulary(path) -> Vocabulary:
    """The vocabulary of `path` (already validated GGUF); raise LlamaFailure if llama.cpp refuses it."""
    import llama_cpp as L

    abort.guard(path)
    llama_log.ensure_installed()
    _backend_init()
    mp = L.llama_model_default_params()
    mp.vocab_only = True
    mp.n_gpu_layers = 0
    with llama_log.capture() as log:
        model = L.llama_model_load_from_file(str(path).encode(), mp)
    if not model:
        raise LlamaFailure(f"llama.cpp could not read the model's vocabulary{log.reason()}", path)
    return Vocabulary(path, model, L.llama_model_get_vocab(model))


def load(params: LoadParams) -> Model:
    """Open `params.path` (already validated GGUF) and a context on it; raise LlamaFailure if refused."""
    import llama_cpp as L

    abort.guard(params.path)  # a GGML_ASSERT or a crash from here on is one line, not a dead process
    llama_log.ensure_installed()
    _backend_init()
    warnings: list[str] = []
    mp = L.llama_model_default_params()
    devices, keep = _offload_devices(L, mp, params)
    ngl = params.n_gpu_layers
    if ngl != 0 and not (devices if params.rpc or params.tensor_split else _gpu_offload(L)):
        warnings.append(GPU_LAYERS_IGNORED)
        ngl = 0
    mp.n_gpu_layers = 0x7FFFFFFF if ngl < 0 else ngl
    mmap = params.use_mmap and params.lora is None  # llama.cpp cannot apply a LoRA over a read-only mapping
    mp.load_mode = {
        (True, True): L.LLAMA_LOAD_MODE_MMAP_MLOCK, (True, False): L.LLAMA_LOAD_MODE_MMAP,
        (False, True): L.LLAMA_LOAD_MODE_MLOCK, (False, False): L.LLAMA_LOAD_MODE_NONE,
    }[(mmap, params.use_mlock)]
    t0 = time.perf_counter()
    with llama_log.capture() as log:
        model = L.llama_model_load_from_file(str(params.path).encode(), mp)
    del keep  # llama.cpp copied the device list and the split
    if not model:
        raise LlamaFailure(f"llama.cpp could not load the model{log.reason()}", params.path)
    ctx = lora = pool = None
    try:
        if params.lora is not None:
            lora = _init_lora(L, model, params)
        ctx, pool = _new_context(L, model, params, params.n_ctx, lora)
        warmup_ms = _warm_up(L, model, ctx, params) if params.warmup else 0.0
    except BaseException:
        if ctx:
            L.llama_free(ctx)
        threadpool.free(pool)
        if lora:
            L.llama_adapter_lora_free(lora)
        L.llama_model_free(model)
        raise
    load_ms = (time.perf_counter() - t0) * 1000
    vocab = L.llama_model_get_vocab(model)
    n_ctx = L.llama_n_ctx(ctx)
    if params.n_ctx > 0 and n_ctx != params.n_ctx:  # llama.cpp pads to a multiple of 256, at least 256
        warnings.append(f"--ctx {params.n_ctx}: llama.cpp made the context {n_ctx} tokens (a multiple of 256)")
    return Model(
        params=params, model=model, ctx=ctx, vocab=vocab, n_vocab=L.llama_vocab_n_tokens(vocab),
        n_ctx=n_ctx, load_ms=load_ms,
        warnings=warnings, warmup_ms=warmup_ms, devices=devices,
        all_on_gpu=not params.rpc and (ngl < 0 or ngl > L.llama_model_n_layer(model)), _lora=lora, _pool=pool,
    )


def _offload_devices(L, mp, params: LoadParams) -> tuple[list, list]:
    """With --rpc or --tensor-split: the model's device list (the servers' devices in --rpc order, then this
    machine's GPUs, as llama.cpp's default order) and the split over it, set in `mp`. Returns the devices
    and the ctypes arrays `mp` points into, to keep alive until the model is loaded."""
    if not (params.rpc or params.tensor_split):
        return [], []
    from ggufkit.runtime import rpc

    endpoints = rpc.parse_servers(params.rpc) if params.rpc else []
    rpc.watch(endpoints)  # a server lost later: llama.cpp aborts, and abort.py's line names it
    devices = rpc.attach(endpoints) + rpc.local_gpus()
    keep: list = [rpc.device_array(devices)]
    mp.devices = ctypes.addressof(keep[0])  # llama-cpp-python declares the field a void *
    if params.tensor_split:
        keep.append(rpc.split_array(params.tensor_split, devices))
        mp.tensor_split = ctypes.cast(keep[1], ctypes.POINTER(ctypes.c_float))
    return devices, keep


def _gpu_offload(L) -> bool:
    """A local GPU to offload to (llama_supports_gpu_offload() is also true for a CPU build with RPC)."""
    if not L.llama_supports_gpu_offload():
        return False
    from ggufkit.runtime import rpc

    try:
        return bool(rpc.local_gpus())
    except GgufkitError:
        return True  # ggml's registry unreadable: trust llama.cpp's answer


def _warm_up(L, model, ctx, params: LoadParams) -> float:
    """Decode two tokens, then one, and forget them; return the milliseconds it took.

    The first decodes of each shape pay one-time costs (GPU kernels loaded, CUDA graphs captured, mapped
    pages read in) that would otherwise land on the first prompt and the first generated tokens.
    llama.cpp's CLI warms up the same way; llama-bench does it before every test.
    """
    t0 = time.perf_counter()
    vocab = L.llama_model_get_vocab(model)
    bos, eos = L.llama_vocab_bos(vocab), L.llama_vocab_eos(vocab)
    toks = [t for t in (bos, eos) if t != L.LLAMA_TOKEN_NULL] or [0]
    for chunk in (toks, toks[:1]):
        arr = (L.llama_token * len(chunk))(*chunk)
        with llama_log.capture() as log:
            rc = L.llama_decode(ctx, L.llama_batch_get_one(arr, len(chunk)))
        if rc != 0:
            raise LlamaFailure(f"llama.cpp failed its warm-up decode (llama_decode returned {rc}){log.reason()}",
                               params.path)
    L.llama_synchronize(ctx)
    L.llama_memory_clear(L.llama_get_memory(ctx), True)
    L.llama_perf_context_reset(ctx)
    return (time.perf_counter() - t0) * 1000


def _new_context(L, model, params: LoadParams, n_ctx: int, lora) -> tuple[object, int | None]:
    """A context on `model` with its own thread pool (and the LoRA adapter, if any); raise LlamaFailure."""
    cp = L.llama_context_default_params()
    cp.n_ctx = n_ctx
    cp.n_batch = params.n_batch
    cp.n_ubatch = params.n_ubatch or params.n_batch
    cp.n_seq_max = params.n_seq_max
    cp.n_threads = cp.n_threads_batch = params.n_threads
    cp.no_perf = False
    if params.eval_callback is not None:
        cp.cb_eval = params.eval_callback
    with llama_log.capture() as log:
        ctx = L.llama_init_from_model(model, cp)
    if not ctx:
        raise LlamaFailure(f"llama.cpp could not create a context{log.reason()}", params.path)
    if lora is not None:
        adapters = (L.llama_adapter_lora_p_ctypes * 1)(lora)
        scales = (ctypes.c_float * 1)(params.lora_scale)
        if L.llama_set_adapters_lora(ctx, adapters, 1, scales) != 0:
            L.llama_free(ctx)
            raise LlamaFailure("llama.cpp could not apply the LoRA adapter", params.lora)
    return ctx, threadpool.attach(ctx, params.n_threads)


def _init_lora(L, model, params: LoadParams):
    if not params.lora.is_file():
        raise BadInputError("LoRA adapter not found", params.lora)
    with llama_log.capture() as log:
        lora = L.llama_adapter_lora_init(model, str(params.lora).encode())
    if not lora:
        raise LlamaFailure(f"llama.cpp could not load the LoRA adapter{log.reason()}", params.lora)
    return lora


_backend_ready = False


def _backend_init() -> None:
    global _backend_ready
    if not _backend_ready:
        import llama_cpp

        llama_cpp.llama_backend_init()
        _backend_ready = True
