"""teacher: a second model rescoring the candidates (RocketQA-style denoising)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import WorkbenchError
from core.false_negatives.base import DetectionContext, Detector, RawSignal

TEACHER_KINDS = ("bi-encoder", "cross-encoder")


@dataclass
class Teacher:
    """A loaded teacher: a sentence-transformers bi-encoder or a CrossEncoder."""

    name: str
    kind: str
    model: Any

    def score(self, query: str, docs: list[str]) -> np.ndarray:
        """Teacher scores of (query, doc) pairs; higher means more relevant."""
        if not docs:
            return np.zeros(0, dtype=np.float32)
        if self.kind == "cross-encoder":
            return np.asarray(self.model.predict([(query, d) for d in docs],
                                                 show_progress_bar=False), dtype=np.float32)
        vectors = self.model.encode([query, *docs], normalize_embeddings=True,
                                    show_progress_bar=False)
        return (vectors[1:] @ vectors[0]).astype(np.float32)


def load_teacher(name: str, kind: str = "cross-encoder") -> Teacher:
    """Load a teacher model from a local folder or hub id.

    Raises:
        WorkbenchError: unknown kind or a model that cannot be loaded.
    """
    if kind not in TEACHER_KINDS:
        raise WorkbenchError(f"teacher kind must be one of {', '.join(TEACHER_KINDS)}, got {kind!r}")
    from sentence_transformers import CrossEncoder, SentenceTransformer

    try:
        if kind == "cross-encoder":
            model = CrossEncoder(name, device="cpu")
        else:
            model = SentenceTransformer(name, device="cpu")
    except (OSError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        where = "folder" if Path(name).exists() else "model"
        raise WorkbenchError(f"teacher {where} {name!r} could not be loaded ({first})") from err
    return Teacher(name, kind, model)


class TeacherScore(Detector):
    """The teacher's score of the candidate minus its score of the (lowest) positive.

    References:
        Qu et al., RocketQA, arXiv 2010.08191 (a cross-encoder denoises mined negatives);
        sentence-transformers mine_hard_negatives(cross_encoder=...).

    Only available when a teacher is configured; it then counts double in the cold suspicion,
    because a stronger model is the best evidence there is short of a human.
    """

    name = "teacher"
    summary = "a second model's score of the candidate relative to the positive"
    weight = 2.0

    def available(self, ctx: DetectionContext) -> bool:
        return ctx.teacher is not None

    def compute(self, ctx: DetectionContext, row: int, doc_indices: np.ndarray,
                scores: np.ndarray, pos_score: float) -> RawSignal:
        teacher: Teacher = ctx.teacher
        query = ctx.query_texts[row]
        cand = teacher.score(query, [ctx.doc_texts[d] for d in doc_indices])
        pos = teacher.score(query, [ctx.doc_texts[d] for d in ctx.positives[row]]).min()
        details = [f"{c:.2f} (positive: {pos:.2f})" for c in cand]
        return RawSignal((cand - pos).astype(np.float32), None, details)

    def reason(self, value: float, evidence: float, detail: str | None) -> str | None:
        if evidence < 0.8 and value < 0:
            return None
        return f"the teacher scores it {detail}"
