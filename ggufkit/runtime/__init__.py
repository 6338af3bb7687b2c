"""Loading llama.cpp, bridging its log, running its work in an isolated child process."""
