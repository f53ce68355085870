"""Benchmarks, one module each (`python -m a3lign_research.benchmarks.<name>`): each measures side by side in one
run, writes its JSON under reports/benchmarks/ and renders its generated block from it (`a3lign_research.blocks`)."""
