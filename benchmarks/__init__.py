"""Throughput benchmarks; they import the product and never copy it."""
