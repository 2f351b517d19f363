"""Speed and memory benchmarks behind ``sif bench``."""
