"""The run record's vocabulary and files: what a run folder holds, its summary rows, machine facts."""
