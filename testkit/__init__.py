"""What the tests and the benchmarks share, so that neither imports the other: the sample clips, frames and scores,
the published reference code, the vs-mlrt peer's harness and the memory probe. Not part of the installed package;
importable from the repository root (pytest's ``pythonpath``, ``python -m benchmarks...`` run there)."""
