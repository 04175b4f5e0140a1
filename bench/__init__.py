"""Benchmarks and simulations, run as scripts; a package so tests can import their models."""
