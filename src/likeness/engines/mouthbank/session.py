"""A speaking session: audio in, lip-synced frames out, chunk by chunk or all at once.

Per frame: loudness/tilt features (media/speech.py) → the person's fitted quantile maps give a
target mouth opening and width → unit selection over the mouth bank (target cost plus a join
cost that favours continuing the same source clip) → composite onto the base loop.

When phone timings are known (offline renders: ``push_phones``), they decide where the lips
meet (/p b m/, silence) and hold vowels open (visemes.py); the loudness cues are then only
for the degree of opening. A live session without phones uses the loudness cues alone.
"""

from __future__ import annotations

import numpy as np

from likeness.engines.base import RenderedFrame
from likeness.engines.mouthbank import visemes as V
from likeness.engines.mouthbank.closure import is_closure
from likeness.engines.mouthbank.composite import composite
from likeness.engines.mouthbank.model import MouthbankModel
from likeness.face import landmarks as lm
from likeness.media import speech as F
from likeness.media.audio import resample
from likeness.media.picture import Picture
from likeness.providers.base import Phone

WIDTH_WEIGHT = 0.3
JOIN_WEIGHT = 0.5
JUMP_COST = 0.35
HOLD_COST = 0.1
ANY = (-np.inf, np.inf)
VOWEL_SLACK = 0.8  # of the vowel's floor
# A closed mouth is drawn only from crops whose lips touch with room to spare (the crop is
# re-sampled into another pose, and a reader sees the gap a little wider), or, for a person
# who never seals their lips, from their MIN_CHOICES most closed crops.
SEAL_MARGIN = 0.75  # of lm.SEALED_GAP
APART = 1.25  # lips "apart" (any phone but /p b m/) leave a gap of at least this x SEALED_GAP
MIN_CHOICES = 5


class MouthbankSession:
    def __init__(self, model: MouthbankModel) -> None:
        self.model = model
        self.fps = model.fps
        self._frame = 0  # frames rendered in this session
        self._prev: int | None = None
        self._open_scale = float(np.std(model.bank_opening)) + 1e-4
        self._width_scale = float(np.std(model.bank_width)) + 1e-4
        self._shape_scale = float(np.mean(np.var(model.bank_shape, axis=0)).sum()) + 1e-6
        self._rest_width = float(np.median(model.bank_width))
        # which crops may draw sealed lips, and which lips that stay apart (computed once)
        self._not_sealed = model.bank_gap > seal_limit(model.bank_gap)
        self._touching = model.bank_gap < APART * lm.SEALED_GAP
        self._audio: np.ndarray = np.zeros(0, np.float32)
        self._offset = 0  # absolute sample index of self._audio[0], from the utterance start
        self._pushed = 0
        self._done = 0  # utterance frames rendered
        self._peaked = 0  # utterance frames the peak tracker has seen
        self._ended = False
        self._peak = _Peak(self.fps)
        self._last_open = model.closed_opening
        self._last_rel = 0.0
        self._visemes = V.Visemes([], self.fps)
        self._vowel_open = V.vowel_openings(model.open_q)
        self._consonant_cap = V.consonant_cap(model.open_q)

    # -- the interface -------------------------------------------------------------------
    def push_audio(self, samples: np.ndarray, sample_rate_hz: int) -> None:
        chunk = resample(
            np.asarray(samples, np.float32).reshape(-1), sample_rate_hz, F.SAMPLE_RATE_HZ
        )
        self._audio = np.concatenate([self._audio, chunk])
        self._pushed += len(chunk)
        self._ended = False

    def push_phones(self, phones: list[Phone]) -> None:
        """Phone timings for the queued utterance (seconds from its first sample)."""
        self._visemes = V.Visemes(phones, self.fps)

    def end_audio(self) -> None:
        self._ended = True

    def clear(self) -> None:
        self._reset_utterance()

    def pull(self) -> list[RenderedFrame]:
        if self._pushed == 0:
            return []
        total = int(np.ceil(self._pushed / F.SAMPLE_RATE_HZ * self.fps))
        if self._ended:
            ready = total
        else:
            ready = self._done
            while ready < total and F.samples_needed(ready + 1, self.fps) <= self._pushed:
                ready += 1
        if ready <= self._done:
            return []
        wanted = np.arange(self._done, min(ready + 1, total))
        raw = F.raw_features(self._audio, self._offset, wanted, self.fps)
        rel = self._peak.update_from(raw[:, 0], self._peaked, wanted)
        self._peaked = max(self._peaked, int(wanted[-1]) + 1)
        speech = F.is_speech(raw[:, 0], rel)
        kinds = self._visemes.kinds(wanted) if self._visemes else None
        if kinds is not None:
            speech |= np.isin(kinds, V.SPOKEN)
        targets = [self._target(raw[k], rel[k], bool(speech[k])) for k in range(len(wanted))]
        if kinds is not None:
            targets = [
                (max(o, self._vowel_open.get(int(kind), o)), w)
                for (o, w), kind in zip(targets, kinds, strict=True)
            ]
        frames = []
        for k, utt_frame in enumerate(range(self._done, ready)):
            speaking = bool(speech[k])
            opening, width = targets[k]
            nxt = k + 1 < len(wanted)
            next_open = targets[k + 1][0] if nxt else opening
            smoothed = 0.25 * self._last_open + 0.5 * opening + 0.25 * next_open
            next_rel = float(rel[k + 1]) if nxt else float(rel[k])
            dip = rel[k] <= self._last_rel and rel[k] <= next_rel
            # Lips meet in pauses, on /p b m/ and (from the loudness cues) on what sounds like
            # a closure; phones, when known, overrule the cues: the lips touch on /p b m/ and
            # pauses only, and stay apart on every other phone.
            kind = V.OTHER if kinds is None else int(kinds[k])
            cue = is_closure(float(rel[k]), float(raw[k, 1]), bool(dip))
            closed = not speaking or kind == V.CLOSED or (kind == V.OTHER and cue)
            band: tuple[float, float] | None = ANY
            if closed:
                smoothed = self.model.closed_opening
                band = None  # sealed
            elif kind in self._vowel_open:  # vowels stay open, however short
                floor = self._vowel_open[kind]
                smoothed = max(smoothed, floor)
                band = (VOWEL_SLACK * floor, np.inf)
            elif kind == V.CONSONANT:  # apart, and below the vowels
                smoothed = min(smoothed, self._consonant_cap)
                band = (-np.inf, self._consonant_cap)
            self._last_open = opening
            self._last_rel = float(rel[k])
            apart = kind in V.SPOKEN and not closed
            frames.append(self._render(smoothed, width, speaking, band, apart))
            self._done = utt_frame + 1
        self._trim()
        if self._ended and self._done >= total:
            self._reset_utterance()
        return frames

    def idle_frame(self) -> RenderedFrame:
        return self._render(self.model.closed_opening, self._rest_width, False, None)

    # -- internals -----------------------------------------------------------------------
    def _reset_utterance(self) -> None:
        self._audio = np.zeros(0, np.float32)
        self._offset = 0
        self._pushed = 0
        self._done = 0
        self._peaked = 0
        self._ended = False
        self._last_rel = 0.0
        self._peak = _Peak(self.fps)
        self._last_open = self.model.closed_opening
        self._visemes = V.Visemes([], self.fps)

    def _trim(self) -> None:
        keep_from = int(F.frame_center(np.array([self._done]), self.fps)[0]) - F.N_FFT
        cut = keep_from - self._offset
        if cut > 0:
            self._audio = self._audio[cut:]
            self._offset += cut

    def _target(self, raw: np.ndarray, rel: float, speaking: bool) -> tuple[float, float]:
        model = self.model
        if not speaking:
            return model.closed_opening, self._rest_width
        opening = float(np.interp(rel, model.rel_q, model.open_q))
        width = float(np.interp(raw[1], model.tilt_q, model.width_q))
        return opening, width

    def _select(
        self, opening: float, width: float, band: tuple[float, float] | None, apart: bool
    ) -> int:
        """band: the openings allowed, None for sealed lips; apart: only lips that do not
        touch (a hard constraint where at least MIN_CHOICES crops are in it: the join cost
        must not keep a mouth open into a /b/ or shut through a vowel)."""
        model = self.model
        cost = ((model.bank_opening - opening) / self._open_scale) ** 2
        if band is None:
            outside = self._not_sealed
        else:
            outside = (model.bank_opening < band[0]) | (model.bank_opening > band[1])
            if apart:
                outside |= self._touching
        if (~outside).sum() >= MIN_CHOICES:
            cost[outside] += 1e6
        cost += WIDTH_WEIGHT * ((model.bank_width - width) / self._width_scale) ** 2
        prev = self._prev
        if prev is not None:
            join = ((model.bank_shape - model.bank_shape[prev]) ** 2).sum(axis=1)
            cost += JOIN_WEIGHT * join / self._shape_scale + JUMP_COST
            cost[prev] -= JUMP_COST - HOLD_COST
            if prev + 1 < len(cost):
                cost[prev + 1] -= JUMP_COST + JOIN_WEIGHT * join[prev + 1] / self._shape_scale
        choice = int(np.argmin(cost))
        self._prev = choice
        return choice

    def _render(
        self,
        opening: float,
        width: float,
        speaking: bool,
        band: tuple[float, float] | None,
        apart: bool = False,
    ) -> RenderedFrame:
        model = self.model
        n_base = len(model.base_planes)
        period = max(1, 2 * n_base - 2)
        phase = self._frame % period
        b = phase if phase < n_base else period - phase
        j = self._select(opening, width, band, apart)
        base = model.base_planes[b]
        patch = composite(
            base, model.base_to_frame[b], model.bank_images[j], model.mask, model.base_ring[b]
        )
        picture = Picture.of_i420(base, patch)  # the base frame's bytes, the mouth laid over
        frame = RenderedFrame(index=self._frame, picture=picture, speaking=speaking)
        self._frame += 1
        return frame


def seal_limit(bank_gap: np.ndarray) -> float:
    """The widest lip gap a sealed mouth may be drawn with: SEAL_MARGIN of a touch where the
    person shows at least MIN_CHOICES such crops, else their MIN_CHOICES most closed."""
    limit = SEAL_MARGIN * lm.SEALED_GAP
    if int((bank_gap <= limit).sum()) >= MIN_CHOICES:
        return limit
    return float(np.sort(bank_gap)[min(MIN_CHOICES, len(bank_gap)) - 1])


class _Peak:
    """The running peak of speech.PeakTracker, fed each utterance frame exactly once."""

    def __init__(self, fps: float) -> None:
        self._tracker = F.PeakTracker(fps)
        self._rel: dict[int, float] = {}

    def update_from(self, energy_db: np.ndarray, seen: int, frames: np.ndarray) -> np.ndarray:
        fresh = frames >= seen
        if fresh.any():
            values = self._tracker.update(energy_db[fresh])
            for frame, value in zip(frames[fresh], values, strict=True):
                self._rel[int(frame)] = float(value)
        out = np.array([self._rel[int(f)] for f in frames], np.float32)
        for frame in [f for f in self._rel if f < int(frames[0]) - 2]:
            del self._rel[frame]
        return out
