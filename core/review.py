"""Annotators' decisions on candidates: recording them by id, resolved to content hashes."""

from __future__ import annotations

from core.errors import WorkbenchError
from core.store import Store


def decide(
    store: Store, run_id: int | None, query_id: str, doc_id: str, label: str, annotator: str,
    note: str | None = None,
) -> int:
    """Record a decision on (query, document) of a run's dataset and return its id.

    The decision is stored under both texts' content hashes, so it applies to every run and
    survives re-ingesting the dataset.

    Raises:
        WorkbenchError: unknown run, query or document, bad label, or no annotator.
    """
    run = store.get_run(run_id)
    dataset = store.get_dataset(dataset_id=run.dataset_id)
    hashes = store.pair_hashes(dataset.dataset_id, query_id, doc_id)
    if hashes is None:
        raise WorkbenchError(
            f"dataset {dataset.name!r} has no query {query_id!r} with document {doc_id!r}"
        )
    query_hash, doc_hash = hashes
    return store.record_decision(query_hash, doc_hash, label, annotator, query_id, doc_id,
                                 dataset.name, note)
