"""The nemesis: faults on their own schedule (schedule.py, pure), run by runner.py, implemented
against the lab in faults.py. It records one Op per fault (process "nemesis") in the history."""
