"""Reshaping GGUF files: split and merge (as llama-gguf-split), edit metadata, diff two models.

    split.split / split.merge / split.split_written   shards written all or none, data by the kernel
    edit.edit(path, Edits(...), out | in_place)        a new header, the data section copied unchanged
    diff.diff(a, b, values=False) -> DiffReport        metadata, tensors, bytes, dequantized values
"""
