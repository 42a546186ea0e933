"""Generic helpers every layer may import: atomic files, bounded text and YAML, versions, memory, the terminal."""
