"""Generation: text and images through Transformers, vLLM's engine, and the memory policy."""
