"""`ggufkit bench`: llama-bench-style throughput, plus load time and peak memory, one child process per config."""
