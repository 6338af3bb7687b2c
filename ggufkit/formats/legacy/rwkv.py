"""rwkv.cpp's file format (RWKV/rwkv.cpp 4358e709, docs/FILE_FORMAT.md, rwkv_file_format.inc).

Magic 'ggmf' like llama.cpp's GGMF, told apart by its format version (100, or 101 for the block
layouts of after May 2023). Then u32 n_vocab, n_embed, n_layer, data_type; no vocabulary; tensors
to the end: u32 dim_count (1..3), key length, data type, dims (ne0 first), key, data, unaligned.
rwkv.cpp numbers its data types its own way: they are mapped to ggml's here.
"""

from __future__ import annotations

VERSIONS = (100, 101)
MAX_DIMS = 3
# rwkv.cpp data type -> ggml type (4-6 were Q4_1_O, Q4_2, Q4_3: refused by rwkv.cpp itself)
TO_GGML = {0: 0, 1: 1, 2: 2, 3: 3, 7: 6, 8: 7, 9: 8, 11: 10, 12: 11, 13: 12, 14: 13, 15: 14}
