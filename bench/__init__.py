"""Benchmarks: throughput and latency figures printed one per line, never pass/fail tests."""
