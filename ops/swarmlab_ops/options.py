"""Option types the subcommands share: bad input is a usage error before anything starts."""
from __future__ import annotations

import argparse
from typing import Any, Callable, Iterable, Optional


def comma_list(choices: Optional[Iterable[Any]] = None,
               item: Callable[[str], Any] = str) -> Callable[[str], list]:
    """An argparse `type`: a comma-separated option as a list, blank items dropped, each converted
    by `item` and, with `choices`, one of them. argparse applies it to a string default too."""
    known = None if choices is None else list(choices)

    def parse(text: str) -> list:
        out = []
        for raw in (part.strip() for part in text.split(",")):
            if not raw:
                continue
            try:
                value = item(raw)
            except ValueError:
                raise argparse.ArgumentTypeError(f"invalid {getattr(item, '__name__', 'item')} value: {raw!r}") from None
            if known is not None and value not in known:
                raise argparse.ArgumentTypeError(f"unknown {raw!r} (known: {', '.join(map(str, known))})")
            out.append(value)
        return out

    return parse
