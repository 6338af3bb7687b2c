"""Small synthetic LLaMA models (random weights, generated SentencePiece-style vocabulary) for tests and demos."""
