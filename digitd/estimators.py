"""Estimators stored inside shipped models. They live in `digitd` (not `train`) because the
daemon unpickles them; they use only numpy and scikit-learn objects fitted by the trainer."""

from __future__ import annotations

from typing import Any

import numpy as np


def softmax(z: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64) * temperature
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class DigitEnsemble:
    """Average of member probabilities (predict_proba, or a tempered softmax of the decision
    function for SVMs), optionally multiplied by a speech-vs-garbage detector's P(speech).

    The product is why the probabilities may sum to less than 1: noise, clicks and non-digit
    sounds get a low confidence without an 11th class stealing argmax from real digits.

    `gate` (optional, binary: class 1 = "sounds like clean audio") weights the members marked in
    `gated` by min(1, gate_gain * P(clean)): a clean-audio specialist speaks up on clean audio
    and falls silent in noise, where the noise-trained members know better.
    """

    def __init__(self, members: list[Any], temperatures: list[float], detector: Any | None = None,
                 gate: Any | None = None, gated: list[bool] | None = None, gate_gain: float = 4.0) -> None:
        self.members = members
        self.temperatures = temperatures
        self.detector = detector
        self.gate = gate
        self.gated = list(gated) if gated is not None else [False] * len(members)
        self.gate_gain = float(gate_gain)
        self.classes_ = members[0].classes_
        for m in members[1:]:
            if list(m.classes_) != list(self.classes_):
                raise ValueError("ensemble members disagree on the classes")

    def member_weights(self, X: np.ndarray) -> np.ndarray:
        """(n, members) weights: 1, or the gate's clipped P(clean) for gated members."""
        w = np.ones((len(X), len(self.members)))
        gate = getattr(self, "gate", None)
        if gate is not None and any(self.gated):
            g = gate.predict_proba(X)[:, list(gate.classes_).index(1)]
            w[:, np.asarray(self.gated)] = np.clip(self.gate_gain * g, 0.0, 1.0)[:, None]
        return w

    def digit_proba(self, X: np.ndarray) -> np.ndarray:
        return self._average(X, self.member_weights(X))

    def _average(self, X: np.ndarray, w: np.ndarray) -> np.ndarray:
        parts = []
        for m, t in zip(self.members, self.temperatures):
            parts.append(m.predict_proba(X) if hasattr(m, "predict_proba") else softmax(m.decision_function(X), t))
        return np.einsum("nm,mnc->nc", w, np.asarray(parts)) / w.sum(axis=1, keepdims=True)

    def parts(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """The same pieces as digitd.runtime.ensemble_parts (digit, weight, speech, clean)."""
        X = np.atleast_2d(X)
        w = self.member_weights(X)
        gated = np.asarray(self.gated, dtype=bool)
        clean = w[:, gated][:, 0] if gated.any() and getattr(self, "gate", None) is not None else np.zeros(len(X))
        return {"digit": self._average(X, w), "weight": w.sum(axis=1), "speech": self.speech_proba(X), "clean": clean}

    def speech_proba(self, X: np.ndarray) -> np.ndarray:
        if self.detector is None:
            return np.ones(len(X))
        return self.detector.predict_proba(X)[:, list(self.detector.classes_).index(1)]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        X = np.atleast_2d(X)
        return self.digit_proba(X) * self.speech_proba(X)[:, None]

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[np.argmax(self.digit_proba(np.atleast_2d(X)), axis=1)]
