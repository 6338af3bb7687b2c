"""Running models through llama.cpp's C API, and isolating llama.cpp work that may abort.

For generation (`run`, `bench`):
    prepare.prepare_model(path, notice) -> PreparedModel   validate (and convert GGJT v3) before llama.cpp
    model.load(LoadParams(...)) -> Model                   model + context; a context manager
    sampler.build_sampler(model, SamplingParams(...))      llama.cpp's native sampler chain
    generate.stream(model, sampler, tokens, StopParams())  TokenEvent..., then one DoneEvent with timings
    chat.ChatSession                                       a conversation kept in the KV cache
Elsewhere: child.run_child (work in a child process), logbridge / llama_log (llama.cpp's log), abort.
"""
