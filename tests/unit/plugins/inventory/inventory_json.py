"""What the inventory tests share: ansible-inventory's JSON read as plain data."""
from __future__ import annotations


def plain(value):
    """ansible-inventory's JSON marks strings from inventory plugins as {'__ansible_unsafe': ...}."""
    if isinstance(value, dict):
        return value['__ansible_unsafe'] if set(value) == {'__ansible_unsafe'} else {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
