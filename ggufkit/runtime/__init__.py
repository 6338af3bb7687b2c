"""Running models through llama.cpp's C API, and isolating llama.cpp work that may abort.

For generation (`run`, `bench`):
    settings.RunSettings                                   every run setting and its default, once
    presets.load_preset(name_or_path) -> dict              a preset's settings, checked against RunSettings
    prepare.prepare_model(path, notice) -> PreparedModel   validate (and convert legacy files) before llama.cpp
    session.open_run(prepared, settings) -> Run            template chosen, model loaded; Run.one_shot, Run.chat
    model.load(LoadParams(...)) -> Model                   model + context; a context manager
    sampler.build_sampler(model, SamplingParams(...))      llama.cpp's native sampler chain
    generate.stream(model, sampler, tokens, StopParams())  TokenEvent..., then one DoneEvent with timings
    chat.ChatSession                                       a conversation kept in the KV cache
Elsewhere: child.run_child (work in a child process), llama_log (llama.cpp's log), abort.
"""
