"""Engines by name. Settings map each public ``model_name`` to one of these."""

from __future__ import annotations

from likeness.engines.base import Engine


class UnknownEngine(KeyError):
    pass


def get_engine(name: str) -> Engine:
    if name == "mouthbank":
        from likeness.engines.mouthbank import MouthbankEngine

        return MouthbankEngine()
    raise UnknownEngine(name)


NAMES = ("mouthbank",)
