"""Measuring a generated run: its files in, the record's parts out (fidelity, sync, parity, golden)."""
