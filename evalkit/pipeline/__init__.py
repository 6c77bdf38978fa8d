"""The generation pipeline, one module per stage: audio -> mel -> encoder -> windows; crop -> runner -> paste; the streamed pass that joins them (generate.py)."""
