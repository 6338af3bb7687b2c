"""Converters between llama.cpp file formats."""
