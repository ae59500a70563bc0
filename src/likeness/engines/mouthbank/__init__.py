"""mouthbank: person-specific lip-sync from the training video alone (see README.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from likeness.engines.base import HeldIn, TrainingInput
from likeness.engines.mouthbank.fit import fit
from likeness.engines.mouthbank.model import MouthbankModel, load


class MouthbankEngine:
    name = "mouthbank"

    def fit(
        self,
        data: TrainingInput,
        out_dir: Path,
        on_progress: Callable[[float], None] | None = None,
        held_in: HeldIn | None = None,
    ) -> dict[str, object]:
        return fit(data, out_dir, on_progress, held_in)

    def load(self, bundle_dir: Path, height: int | None = None) -> MouthbankModel:
        return load(bundle_dir, height)


__all__ = ["MouthbankEngine", "MouthbankModel"]
