"""Clients: issue one operation, return its Op (outcome and timestamps). Nothing else."""
