"""Programs that run inside a container of the stack (python3 -c), in the app's image.

They connect to Redis the way the app does: the app's own Settings (its environment: REDIS_URL,
REDIS_SENTINELS, REDIS_PASSWORD_FILE, ...) and CounterStore's clients, with retries off. So they need
no password handed over and follow whatever the stack configures for the app (Sentinel, auth). They
print JSON on stdout; the controller reads it as data.
"""
from pathlib import Path


def source(name: str) -> str:
    """The text of one of these programs, for `python3 -c`."""
    return (Path(__file__).parent / f"{name}.py").read_text(encoding="utf-8")
