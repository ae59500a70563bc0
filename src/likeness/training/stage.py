"""The one shape every training stage has, and the context each gets.

A stage reads what earlier stages left in the workspace and writes its own output there
(training/workspace.py); the pipeline runs the stages in order and knows none of their files.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from likeness.providers.base import Asr, PhoneRecognizer
from likeness.training.limits import Limits
from likeness.training.workspace import Workspace

# Called with how far a long stage has got, 0.0..1.0.
Progress = Callable[[float], None]


@dataclass(frozen=True)
class Context:
    """One replica's training inputs, as every stage sees them."""

    work: Workspace
    limits: Limits
    train_video_url: str
    engine: str
    # replica_type "non_human": no spoken consent is asked for, whatever the policy.
    non_human: bool
    consent_video_url: str | None
    # Maps one of our own upload URLs to its file (None for any other URL).
    resolve_upload: Callable[[str], Path | None]
    # The ears: words for the consent check, phones for the quality report's render.
    asr: Asr
    phones: PhoneRecognizer


@dataclass(frozen=True)
class Stage:
    # Stored in replicas.stage once the stage is done, so a retry resumes after it: never
    # rename one.
    name: str
    # training_progress once it is done (it starts at the previous stage's).
    done_pct: int
    run: Callable[[Context, Progress], None]
    # Work that can go on beside the next stage: entering starts it, leaving waits for it and
    # saves its output; an error in the next stage ends it unfinished. The pipeline runs the
    # stage this way when the next stage runs too (the consent check beside the tracking).
    beside: Callable[[Context], AbstractContextManager[None]] | None = None
