"""The run matrix: one job per combination, each its own unit (jobs.py), and where the jobs run: here,
in local worker processes, or as tasks on a Ray cluster (executors.py, ray_tasks.py)."""
