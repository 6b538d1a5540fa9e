"""`patrol bench`: speed, cost and quality of decisions, written to BENCHMARKS.md."""
