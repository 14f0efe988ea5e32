"""Checkers: read a finished history and decide. Pure functions, tested with recorded histories."""
