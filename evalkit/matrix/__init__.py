"""The run matrix: its plan, one job per combination (plan.py), each job its own unit (jobs.py), the state of
an unfinished run folder (state.py), and where the jobs run: here, in local worker processes, or as tasks on a
Ray cluster (executors.py, ray_tasks.py)."""
