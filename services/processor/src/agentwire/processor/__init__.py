"""processor: sequences, deduplicates and enriches events; keeps task state (faust-streaming)."""
