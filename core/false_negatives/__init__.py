"""False-negative detection: detectors in a registry, combined into one explained suspicion.

Each detector is a small module with one signature (``Detector.compute``); ``suspicion.Scorer``
combines their signals into a suspicion in [0, 1] with human-readable reasons, and ``learning``
fits a classifier on annotators' decisions.
"""

from __future__ import annotations

from core.false_negatives.base import DetectionContext, Detector, RawSignal
from core.registry import Registry

_REGISTRY: Registry[Detector] = Registry("detector")


def register(detector: Detector) -> Detector:
    """Add a detector; a second one under the same name is refused (ValueError)."""
    return _REGISTRY.register(detector.name, detector)


def detector_names() -> list[str]:
    """Names of the registered detectors, in registration order."""
    return _REGISTRY.names()


def get_detector(name: str) -> Detector:
    """Return a registered detector.

    Raises:
        ValueError: unknown name (the message lists the valid ones).
    """
    return _REGISTRY.get(name)


def _register_builtins() -> None:
    from core.false_negatives.cluster import SameCluster
    from core.false_negatives.cross_query import CrossQuery
    from core.false_negatives.lexical import Lexical
    from core.false_negatives.positive_similarity import PositiveSimilarity
    from core.false_negatives.relative_score import RelativeScore
    from core.false_negatives.teacher import TeacherScore

    for detector in (RelativeScore(), PositiveSimilarity(), Lexical(), SameCluster(),
                     CrossQuery(), TeacherScore()):
        register(detector)


_register_builtins()

__all__ = ["DetectionContext", "Detector", "RawSignal", "detector_names", "get_detector",
           "register"]
