"""Where the lips meet inside speech, from the loudness and tilt of media/speech.py alone: a
session closes the mouth on these cues unless known phones say otherwise (visemes.py)."""

from __future__ import annotations

# Lip-closure cues inside speech. Bilabials (/p b m/) are quiet (a stop's silence, a nasal's
# murmur) and their energy sits low in the spectrum (low tilt). Tuned on LibriVox clips
# 0890/0920/0930 against PocketSphinx phone alignments (90 % of bilabials caught, no open
# vowel held shut); benchmarks/lipsync.py scores it on 0870/0880, which tuning never saw.
STOP_REL_DB = -20.0
CLOSURE_REL_DB = -10.0
CLOSURE_TILT_DB = -14.0
DIP_REL_DB = -6.0
DIP_TILT_DB = -10.0


def is_closure(rel_db: float, tilt_db: float, local_dip: bool) -> bool:
    """Should the lips meet in this speech frame? ``local_dip``: the loudness is a local
    minimum (no louder than the frames either side)."""
    if rel_db < STOP_REL_DB:  # a stop's silent closure
        return True
    if rel_db < CLOSURE_REL_DB and tilt_db < CLOSURE_TILT_DB:
        return True
    return local_dip and rel_db < DIP_REL_DB and tilt_db < DIP_TILT_DB
