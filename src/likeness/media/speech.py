"""Speech features per video frame: speech-band loudness (dB) relative to a running peak, and
spectral tilt (how much of the energy sits above 1 kHz: spread lips vs rounded lips).

General speech analysis, used by the upload checks (is there speech?), the quality report and
the mouthbank engine (to fit the person's audio→mouth map, and to drive it). The same code runs
in one pass or chunk by chunk, with identical results.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE_HZ = 16000
N_FFT = 1024
HALF = N_FFT // 2
SILENCE_DBFS = -55.0  # below this a frame is silent whatever the running peak says
GATE_REL_DB = -28.0  # more than this far under the running peak: a pause
PEAK_DECAY_DB_PER_S = 3.0
PEAK_FLOOR_DBFS = -30.0

_FREQS = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE_HZ)
_SPEECH = (_FREQS >= 80) & (_FREQS < 4000)
_LOW = (_FREQS >= 250) & (_FREQS < 1000)
_HIGH = (_FREQS >= 1000) & (_FREQS < 4000)
_WINDOW = np.hanning(N_FFT).astype(np.float32)


@dataclass
class PeakTracker:
    """Running loudness reference: jumps up to new peaks, decays slowly."""

    fps: float
    peak_db: float = PEAK_FLOOR_DBFS

    def update(self, energy_db: np.ndarray) -> np.ndarray:
        """(T,) dBFS → (T,) dB relative to the running peak (≤ 0)."""
        decay = PEAK_DECAY_DB_PER_S / self.fps
        out = np.empty_like(energy_db)
        peak = self.peak_db
        for i, value in enumerate(energy_db):
            peak = max(float(value), peak - decay, PEAK_FLOOR_DBFS)
            out[i] = value - peak
        self.peak_db = peak
        return out


def frame_center(index: np.ndarray, fps: float) -> np.ndarray:
    """Sample index (at 16 kHz) of the middle of each video frame."""
    return np.floor((index + 0.5) * SAMPLE_RATE_HZ / fps).astype(np.int64)


def samples_needed(frame_index: int, fps: float) -> int:
    """How many samples must be known to compute the features of ``frame_index``."""
    return int(frame_center(np.array([frame_index]), fps)[0]) + HALF


def raw_features(audio: np.ndarray, offset: int, frames: np.ndarray, fps: float) -> np.ndarray:
    """Loudness and tilt for the given frame indices.

    audio: (N,) float32 at 16 kHz whose first sample is absolute sample ``offset``.
    Returns (len(frames), 2) float32: [speech-band energy dBFS, tilt dB].
    """
    if len(frames) == 0:
        return np.zeros((0, 2), np.float32)
    starts = frame_center(frames, fps) - HALF - offset
    pad_left = max(0, -int(starts.min()))
    pad_right = max(0, int(starts.max()) + N_FFT - len(audio))
    padded = np.pad(audio.astype(np.float32), (pad_left, pad_right))
    windows = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[starts + pad_left]
    power = np.abs(np.fft.rfft(windows * _WINDOW, axis=1)) ** 2 / (N_FFT * _WINDOW.sum())
    speech = power[:, _SPEECH].sum(axis=1)
    energy_db = 10 * np.log10(speech + 1e-10)
    tilt = 10 * np.log10(power[:, _HIGH].sum(axis=1) + 1e-10) - 10 * np.log10(
        power[:, _LOW].sum(axis=1) + 1e-10
    )
    return np.stack([energy_db, tilt], axis=1).astype(np.float32)


def relative_features(audio: np.ndarray, fps: float) -> np.ndarray:
    """Whole-clip convenience: (N,) 16 kHz → (T, 3) [energy dBFS, dB under peak, tilt]."""
    n_frames = int(np.ceil(len(audio) / SAMPLE_RATE_HZ * fps))
    raw = raw_features(audio, 0, np.arange(n_frames), fps)
    rel = PeakTracker(fps).update(raw[:, 0])
    return np.stack([raw[:, 0], rel, raw[:, 1]], axis=1)


def is_speech(energy_db: np.ndarray, rel_db: np.ndarray) -> np.ndarray:
    """(T,) dBFS and (T,) dB under the running peak → (T,) bool: speech, not a pause."""
    return (energy_db > SILENCE_DBFS) & (rel_db > GATE_REL_DB)
