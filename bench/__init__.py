"""Corridor's benchmarks: scenarios that print comparable figures (never tests).

Run them all with `python -m bench` (see `python -m bench --help`).
"""
