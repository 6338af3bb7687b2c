"""Bounded, validating readers (and the legacy writer) for GGUF and pre-GGUF llama.cpp files."""
