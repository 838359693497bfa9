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
    """

    def __init__(self, members: list[Any], temperatures: list[float], detector: Any | None = None) -> None:
        self.members = members
        self.temperatures = temperatures
        self.detector = detector
        self.classes_ = members[0].classes_
        for m in members[1:]:
            if list(m.classes_) != list(self.classes_):
                raise ValueError("ensemble members disagree on the classes")

    def digit_proba(self, X: np.ndarray) -> np.ndarray:
        parts = []
        for m, t in zip(self.members, self.temperatures):
            parts.append(m.predict_proba(X) if hasattr(m, "predict_proba") else softmax(m.decision_function(X), t))
        return np.mean(parts, axis=0)

    def speech_proba(self, X: np.ndarray) -> np.ndarray:
        if self.detector is None:
            return np.ones(len(X))
        return self.detector.predict_proba(X)[:, list(self.detector.classes_).index(1)]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        X = np.atleast_2d(X)
        return self.digit_proba(X) * self.speech_proba(X)[:, None]

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[np.argmax(self.digit_proba(np.atleast_2d(X)), axis=1)]
