"""Tests of the benchmark suite's own logic (parsing, summaries, tables); no load."""
