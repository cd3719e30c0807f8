"""The arm-token scanner (G10): every arm code and display name, every stage-2 option code and
every stage-2 action of a protocol, matched as whole words, case-insensitively.

Built from the protocol here, independently of :mod:`tailor.services.blinding` (a scanner that
reused the redactor's own token list could not catch a token the redactor forgot).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from itertools import combinations

from tailor.protocol import Protocol, load_protocol


def token_list(protocol: Protocol) -> list[str]:
    codes = [a.code for a in protocol.arms]
    names = [a.name for a in protocol.arms]
    options = ["+".join(pair) for pair in combinations(codes, 2)]
    actions = sorted({a for s in protocol.stages for acts in (s.options or {}).values()
                      for a in acts})
    return codes + names + options + actions


def scanner(protocol: Protocol | None = None) -> re.Pattern[str]:
    tokens = token_list(protocol or load_protocol("best"))
    alts = "|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True))
    return re.compile(rf"(?<![A-Za-z0-9_])(?:{alts})(?![A-Za-z0-9_])", re.IGNORECASE)


def arm_hits(pattern: re.Pattern[str], body: str,
             headers: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> list[str]:
    """Every arm token in a response body and its headers (names and values)."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    text = body + "\n" + "\n".join(f"{k}: {v}" for k, v in items)
    return [m.group(0) for m in pattern.finditer(text)]
