"""Spoken consent: does the recognised speech contain Tavus's consent statement?

"I, [FULL NAME], am currently speaking and consent Tavus to create an AI clone of me by using
the audio and video samples I provide. I understand that this AI clone can be used to create
videos that look and sound like me."  Any name is accepted, and "likeness" may stand for
"Tavus". Recognition is noisy (PocketSphinx hears "AI clone" as "ai call money" now and then),
so the statement passes when enough of its words are found in order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher

STATEMENT = (
    "am currently speaking and consent tavus to create an ai clone of me by using the audio "
    "and video samples i provide i understand that this ai clone can be used to create videos "
    "that look and sound like me"
)
EXPECTED = STATEMENT.split()
SLOT = EXPECTED.index("tavus")
WINDOW_S = 40.0


@dataclass(frozen=True)
class ConsentResult:
    passed: bool
    score: float  # share of the statement's words found in order
    threshold: float
    heard: str


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def score(heard: str) -> float:
    got = ["tavus" if w in ("tavus", "likeness") else w for w in words(heard)]
    matcher = SequenceMatcher(a=EXPECTED, b=got, autojunk=False)
    matched = sum(block.size for block in matcher.get_matching_blocks())
    return matched / len(EXPECTED)


def judge(heard: str, threshold: float) -> ConsentResult:
    value = score(heard)
    return ConsentResult(value >= threshold, value, threshold, heard)
