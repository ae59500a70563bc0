"""Phone timings → what the mouth must do in each video frame.

Frame i shows the instant i / fps and lasts 1 / fps. A frame is CLOSED when it holds the
middle of a bilabial (/p b m/: the lips must meet, even for a 30 ms closure) or half of the
frame is one, or when silence fills most of it; it is a VOWEL or an OPEN_VOWEL when that
phone fills most of it (vowels keep the mouth at least moderately open, open vowels wide);
a CONSONANT when another phone does (the lips stay apart, no wider than the person's middle
opening); OTHER when no phone touches it.
"""

from __future__ import annotations

import numpy as np

from likeness.providers.base import Phone

OTHER, CLOSED, VOWEL, OPEN_VOWEL, CONSONANT = 0, 1, 2, 3, 4
SPOKEN = (VOWEL, OPEN_VOWEL, CONSONANT)

BILABIALS = frozenset({"P", "B", "M"})
OPEN_VOWELS = frozenset({"AA", "AE", "AH", "AO", "AW", "AY"})
VOWELS = OPEN_VOWELS | {"EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"}
SILENCES = frozenset({"SIL", "+NSN+", "+SPN+", "+BREATH+", "+COUGH+", "+NOISE+"})

# Least opening, as a quantile of the person's own opening while talking.
FLOOR_QUANTILE = {VOWEL: 0.6, OPEN_VOWEL: 0.8}
# Most opening of a consonant, as the same kind of quantile: below the vowels', so the open
# vowels stand out of the speech around them.
CONSONANT_CAP_QUANTILE = 0.5


def vowel_openings(open_q: np.ndarray) -> dict[int, float]:
    """The person's opening quantiles (41 evenly spaced) → the floor per vowel kind."""
    levels = np.linspace(0.0, 1.0, len(open_q))
    return {kind: float(np.interp(q, levels, open_q)) for kind, q in FLOOR_QUANTILE.items()}


def consonant_cap(open_q: np.ndarray) -> float:
    """The person's opening quantiles → the widest a consonant opens."""
    return float(np.interp(CONSONANT_CAP_QUANTILE, np.linspace(0.0, 1.0, len(open_q)), open_q))


class Visemes:
    def __init__(self, phones: list[Phone], fps: float) -> None:
        self._phones = phones
        self._fps = fps
        self._starts = np.array([p.start_s for p in phones])
        self._ends = np.array([p.end_s for p in phones])

    def __bool__(self) -> bool:
        return bool(self._phones)

    def kinds(self, frames: np.ndarray) -> np.ndarray:
        """(F,) utterance frame indices → (F,) kinds."""
        return np.array([self._kind(int(f)) for f in frames], np.int64)

    def _kind(self, frame: int) -> int:
        t0, t1 = frame / self._fps, (frame + 1) / self._fps
        overlap = np.minimum(self._ends, t1) - np.maximum(self._starts, t0)
        touching = np.flatnonzero(overlap > 0)
        if touching.size == 0:
            return OTHER
        share = {name: 0.0 for name in (self._phones[i].name for i in touching)}
        for i in touching:
            phone = self._phones[i]
            share[phone.name] += overlap[i] * self._fps
            middle = (phone.start_s + phone.end_s) / 2
            if phone.name in BILABIALS and (t0 <= middle < t1 or overlap[i] * self._fps >= 0.5):
                return CLOSED
        name = max(share, key=share.__getitem__)
        if name in SILENCES:
            return CLOSED if share[name] >= 0.5 else OTHER
        if name in OPEN_VOWELS:
            return OPEN_VOWEL
        return VOWEL if name in VOWELS else CONSONANT
