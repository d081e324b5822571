"""False-negative suspicion: registry, planted errors, storage, learning, teacher and curated.

Planted-error tests follow cleanlab: put a known near-duplicate and a paraphrase of a labeled
positive into the corpus and assert the suspicion ranks them first, an unrelated document last.
"""

from __future__ import annotations

import json
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.metrics import roc_auc_score

from core.errors import WorkbenchError
from core.export import ExportOptions, export_run, planned_negatives
from core.false_negatives import (
    DetectionContext, Detector, RawSignal, detector_names, get_detector, register,
)
from core.false_negatives.cross_query import REASON_QUERY_SIMILARITY
from core.false_negatives.learned_reasons import CORRECTION_REASONS, QUERY_REASONS, signal_label
from core.false_negatives.learning import (
    COLD_KEY, NOTE_PREFIX, QUERY_EFFECT, MonotoneLogistic, cold_suspicion, forget_learning,
    learn_from_decisions, learned_suspicion, query_effect, relearn_if_due, signal_matrix,
)
from core.false_negatives.suspicion import Scorer, weights_rows, weights_text
from core.false_negatives.teacher import load_teacher
from core.mine import MineRequest, mine
from core.mining import get_strategy, parse_params, strategy_names
from core.mining.curated import CuratedState
from core.remine import find_reusable_run
from core.store import Store
from core.text import text_hash
from tests.conftest import ingest_tiny, topical_corpus, write_beir
from tests.workloads import add_fake_run

BUILTIN_DETECTORS = ["relative_score", "positive_similarity", "lexical", "cluster", "cross_query",
                     "teacher"]
# Parameters that make each strategy satisfiable on the 60-document topical corpus.
STRATEGY_PARAMS = {"rank_window": {"lo": 2, "hi": 30}, "simans": {"pool": 30},
                   "cluster": {"n_clusters": 6}}

# The planted corpus: q-france's positive, a copy with one word changed, a paraphrase, an
# unrelated document, and related fillers; two near-identical German queries whose positives are
# candidates of each other.
PLANTED_CORPUS = {
    "pos": ("Paris", "Paris is the capital and largest city of France."),
    "near": ("Paris", "Paris is the capital and biggest city of France."),
    "para": ("French capital", "The largest city in France, Paris, is also the nation's capital."),
    "unrelated": ("Bananas", "Bananas are rich in potassium and grow in tropical climates."),
    "lyon": ("Lyon", "Lyon is a large city in France, known for its cuisine."),
    "eiffel": ("Eiffel Tower", "The Eiffel Tower is a wrought-iron tower in Paris, France."),
    "marseille": ("Marseille", "Marseille is a port city on the Mediterranean coast of France."),
    "loire": ("Loire", "The Loire is the longest river in France."),
    "berlin-a": ("Berlin", "Berlin is the capital of Germany and its largest city."),
    "berlin-b": ("Berlin", "Berlin, on the river Spree, is the seat of the German government."),
    "munich": ("Munich", "Munich is the capital of Bavaria in southern Germany."),
}
PLANTED_QUERIES = {
    "q-france": "What is the capital of France?",
    "q-germany-a": "what is the capital city of Germany",
    "q-germany-b": "what's the capital city of Germany?",
}
PLANTED_QRELS = [("q-france", "pos", 1), ("q-germany-a", "berlin-a", 1),
                 ("q-germany-b", "berlin-b", 1)]


@contextmanager
def _open_copy(source: Path, target_dir: Path):
    """A Store on a copy of a closed workspace (its embedding cache and runs come along)."""
    target_dir.mkdir(parents=True, exist_ok=True)
    path = target_dir / "ws.duckdb"
    shutil.copy(source, path)
    store = Store(path)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """The planted corpus ingested and mined with top_k: (store, run). No decisions are recorded."""
    root = tmp_path_factory.mktemp("planted")
    store = Store(root / "ws.duckdb")
    ingest_tiny(store, write_beir(root / "beir", PLANTED_CORPUS, PLANTED_QUERIES, PLANTED_QRELS))
    run = mine(store, MineRequest(strategy="top_k", num_negatives=3))
    yield store, run
    store.close()


@pytest.fixture(scope="module")
def topical_ws(tmp_path_factory):
    """A closed workspace with the topical corpus and a top_k run (pool: every non-positive).

    Returns (workspace path, run id); tests open copies, so decisions never leak between them.
    """
    root = tmp_path_factory.mktemp("topical")
    corpus, queries, qrels = topical_corpus()
    path = root / "ws.duckdb"
    with Store(path) as store:
        ingest_tiny(store, write_beir(root / "beir", corpus, queries, qrels))
        run = mine(store, MineRequest(strategy="top_k", num_negatives=5))
    return path, run.run_id


@pytest.fixture(scope="module")
def topical_store(topical_ws, tmp_path_factory):
    """A read-mostly copy of the topical workspace shared by the tests that record no decision."""
    with _open_copy(topical_ws[0], tmp_path_factory.mktemp("topical-shared")) as store:
        yield store


def _same_topic(frame: pd.DataFrame) -> np.ndarray:
    """Topical-corpus truth: a candidate of the query's own topic is a false negative."""
    return np.array([d.split("-")[0] == q.split("-")[1]
                     for q, d in zip(frame["query_id"], frame["doc_id"])])


def _by_pair(frame: pd.DataFrame, column: str) -> pd.Series:
    return frame.set_index(["query_id", "doc_id"])[column]


# -- registry and the detector contract ------------------------------------------------------------
def test_registry_lists_the_builtin_detectors():
    assert set(BUILTIN_DETECTORS) <= set(detector_names())
    assert [n for n in detector_names() if n in BUILTIN_DETECTORS] == BUILTIN_DETECTORS


def test_registry_refuses_duplicates_and_names_valid_choices():
    with pytest.raises(ValueError, match="already registered"):
        register(get_detector("lexical"))
    with pytest.raises(ValueError, match="unknown detector 'nope'; choose one of relative_score, "
                                         "positive_similarity, lexical, cluster, cross_query"):
        get_detector("nope")
    assert isinstance(get_detector("teacher"), Detector)


class _StubTeacher:
    """Scores a document by its length (deterministic, no model)."""

    encode = None  # scored pair by pair, as a cross-encoder is

    def score(self, query: str, docs: list[str]) -> np.ndarray:
        return np.array([len(d) / 100 for d in docs], dtype=np.float32)


def _synthetic_context() -> DetectionContext:
    rng = np.random.default_rng(0)
    docs = rng.normal(size=(20, 8)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    queries = rng.normal(size=(3, 8)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    texts = [f"document {i} about topic {i % 4} and word{i}" for i in range(20)]
    return DetectionContext(["a", "b", "c"], ["topic 1 word3", "topic 2", "word7 topic 3"],
                            queries, texts, docs, [np.array([0]), np.array([1, 2]), np.array([3])],
                            seed=0, teacher=_StubTeacher())


@pytest.mark.parametrize("name", BUILTIN_DETECTORS)
def test_detector_contract(name):
    """One value per candidate, finite; decisive and details align when given; deterministic."""
    ctx = _synthetic_context()
    detector = get_detector(name)
    assert detector.available(ctx) and detector.weight >= 0 and detector.summary
    docs = np.arange(4, 20)
    scores = (ctx.doc_vectors[docs] @ ctx.query_vectors[1]).astype(np.float32)
    raw = detector.compute(ctx, 1, docs, scores, 0.5)
    again = detector.compute(ctx, 1, docs, scores, 0.5)
    assert raw.values.shape == (len(docs),) and np.isfinite(raw.values).all()
    np.testing.assert_array_equal(raw.values, again.values)
    if raw.decisive is not None:
        assert raw.decisive.shape == (len(docs),)
        set_values = raw.decisive[~np.isnan(raw.decisive)]
        assert ((set_values >= 0) & (set_values <= 1)).all()
    if raw.details is not None:
        assert len(raw.details) == len(docs)
    if raw.positive is not None:  # the signal read on query b's two labeled positives
        assert raw.positive.shape == (2,) and np.isfinite(raw.positive).all()
    for i, value in enumerate(raw.values):
        text = detector.reason(float(value), 0.9, raw.details[i] if raw.details else None)
        assert text is None or (isinstance(text, str) and text)


def test_teacher_detector_needs_a_teacher():
    ctx = _synthetic_context()
    ctx.teacher = None
    assert not get_detector("teacher").available(ctx)


def test_positive_similarity_ranks_a_planted_duplicate_first():
    ctx = _synthetic_context()
    ctx.doc_vectors[10] = ctx.doc_vectors[0] + 0.01  # a near-copy of query a's positive
    ctx.doc_vectors[10] /= np.linalg.norm(ctx.doc_vectors[10])
    docs = np.arange(4, 20)
    raw = get_detector("positive_similarity").compute(ctx, 0, docs, np.zeros(16, np.float32), 0.5)
    assert docs[int(np.argmax(raw.values))] == 10
    assert np.flatnonzero(~np.isnan(raw.decisive)).tolist() == [int(np.flatnonzero(docs == 10)[0])]


class _Probed(Detector):
    """A synthetic signal: each query's pool is uniform noise; the labeled positive's value sits
    at ``positive_at`` (a quantile of the pool's range), or is not given when None."""

    summary = "synthetic"

    def __init__(self, name: str, positive_at: float | None) -> None:
        self.name, self.positive_at = name, positive_at

    def compute(self, ctx, row, doc_indices, scores, pos_score):
        values = np.random.default_rng([row, len(self.name)]).random(len(doc_indices))
        positive = None if self.positive_at is None else np.array([self.positive_at])
        return RawSignal(values.astype(np.float32), positive=positive)


def _probe_pools(n_queries: int) -> tuple[DetectionContext, list]:
    ctx = DetectionContext([f"q{i}" for i in range(n_queries)], [""] * n_queries,
                           np.zeros((n_queries, 2), np.float32), [""] * 50,
                           np.zeros((50, 2), np.float32), [np.array([0])] * n_queries)
    docs = np.arange(1, 50)
    return ctx, [(i, docs, np.zeros(49, np.float32), 0.5) for i in range(n_queries)]


def test_signals_are_weighted_by_how_they_rank_the_labeled_positives():
    """A signal that ranks the known positives above their pools outweighs one that places them
    at chance; one that ranks them last gets no weight; one that cannot be read on a positive gets
    the measured signals' mean separation."""
    ctx, pools = _probe_pools(200)
    detectors = [_Probed("strong", 0.97), _Probed("weak", 0.6), _Probed("inverted", 0.02),
                 _Probed("unmeasurable", None)]
    scorer = Scorer(ctx, detectors=detectors).fit(pools)
    w = scorer.weights
    assert w["strong"] > 2 * w["weak"] > 0 and w["inverted"] == 0
    assert w["unmeasurable"] == pytest.approx((w["strong"] + w["weak"] + w["inverted"]) / 3)
    assert scorer.probes["strong"] == pytest.approx(0.97, abs=0.03)
    assert scorer.probes["unmeasurable"] is None
    report = scorer.weight_report()
    assert report["inverted"] == {"weight": 0.0, "probe": pytest.approx(0.02, abs=0.03)}
    assert "strong" in weights_text(report) and "not measurable" in weights_text(report)
    rows = {r["signal"]: r for r in weights_rows(report)}
    assert rows["unmeasurable"]["labeled positives outrank (share of their pool)"] is None
    assert rows["strong"]["weight"] == report["strong"]["weight"]
    # The combined suspicion follows the strong signal more than the weak one.
    row, docs, scores, pos = pools[0]
    result = scorer.score(row, docs, scores, pos)
    corr = {n: np.corrcoef(result.suspicion, result.features[n])[0, 1] for n in ("strong", "weak")}
    assert corr["strong"] > corr["weak"]


def test_positive_similarity_is_measured_where_a_query_has_two_positives():
    """A query with several positives reads each against the others; with one it cannot."""
    ctx = _synthetic_context()  # query b has two positives
    pools = [(row, np.arange(4, 20), np.zeros(16, np.float32), 0.5) for row in range(3)]
    names = ["relative_score", "positive_similarity"]
    scorer = Scorer(ctx, names=names).fit(pools)
    closest = float(ctx.doc_vectors[1] @ ctx.doc_vectors[2])
    raw = get_detector("positive_similarity").compute(ctx, 1, pools[1][1], pools[1][2], 0.5)
    np.testing.assert_allclose(raw.positive, [closest, closest], rtol=1e-5)
    assert scorer.probes["positive_similarity"] is not None
    ctx.positives = [np.array([0]), np.array([1]), np.array([3])]
    assert Scorer(ctx, names=names).fit(pools).probes["positive_similarity"] is None


def test_few_queries_pull_the_weights_towards_each_other_and_nothing_measured_keeps_the_priors():
    ctx, pools = _probe_pools(5)
    few = Scorer(ctx, detectors=[_Probed("strong", 0.97), _Probed("weak", 0.6)]).fit(pools)
    ctx, pools = _probe_pools(400)
    many = Scorer(ctx, detectors=[_Probed("strong", 0.97), _Probed("weak", 0.6)]).fit(pools)
    ratio = lambda s: s.weights["strong"] / s.weights["weak"]  # noqa: E731
    assert 1 < ratio(few) < ratio(many)
    unmeasured = Scorer(ctx, detectors=[_Probed("a", None), _Probed("b", None)]).fit(pools)
    assert unmeasured.weights == {"a": 1.0, "b": 1.0}
    # No signal ranks the positives above chance: nothing to go on, so the priors stay.
    inverted = Scorer(ctx, detectors=[_Probed("a", 0.1), _Probed("bb", 0.3)]).fit(pools)
    assert inverted.weights == {"a": 1.0, "bb": 1.0}


# -- planted errors, end to end --------------------------------------------------------------------
def test_planted_duplicate_and_paraphrase_rank_first_unrelated_last(planted):
    store, run = planted
    cands = store.run_candidates(run.run_id)
    france = cands[cands.query_id == "q-france"].sort_values("suspicion", ascending=False)
    order = france.doc_id.tolist()
    assert order[:2] == ["near", "para"], france[["doc_id", "suspicion", "reasons"]]
    assert order[-1] == "unrelated", france[["doc_id", "suspicion", "reasons"]]
    reasons = dict(zip(france.doc_id, france.reasons.map(json.loads)))
    assert any(r.startswith("near-duplicate of the positive") for r in reasons["near"])
    assert any(r.startswith(("near-duplicate of the positive", "close to the positive"))
               for r in reasons["para"])
    assert not any("positive" in r for r in reasons["unrelated"])
    # A near-duplicate is decisive: the suspicion is at least its cosine (>= 0.95).
    assert float(france.suspicion.iloc[0]) >= 0.95


def test_labeled_positive_of_a_near_identical_query_is_decisive(planted):
    store, run = planted
    cands = store.run_candidates(run.run_id)
    row = cands[(cands.query_id == "q-germany-b") & (cands.doc_id == "berlin-a")].iloc[0]
    assert row.suspicion >= 0.9
    reasons = json.loads(row.reasons)
    assert any(r.startswith("labeled positive of the similar query "
                            "'what is the capital city of Germany'") for r in reasons), reasons
    assert json.loads(row.signals)["cross_query"] >= 0.9
    # A positive of a dissimilar query is not called a positive of "the similar query".
    named = [(q, d, r) for q, d, rs in zip(cands.query_id, cands.doc_id, cands.reasons)
             for r in json.loads(rs) if "similar query" in r]
    assert {(q, d) for q, d, _ in named} >= {("q-germany-b", "berlin-a"),
                                               ("q-germany-a", "berlin-b")}
    for _, _, text in named:
        cosine = float(re.search(r"\(cosine (-?[0-9.]+)\)$", text).group(1))
        assert cosine >= REASON_QUERY_SIMILARITY, text


def test_suspicion_is_bounded_and_deterministic(planted):
    store, run = planted
    again = mine(store, MineRequest(strategy="top_k", num_negatives=3))
    first, second = store.run_candidates(run.run_id), store.run_candidates(again.run_id)
    assert len(first) == len(second) and first.suspicion.between(0, 1).all()
    pd.testing.assert_series_equal(_by_pair(first, "suspicion"), _by_pair(second, "suspicion"))
    pd.testing.assert_series_equal(_by_pair(first, "reasons"), _by_pair(second, "reasons"))
    pd.testing.assert_series_equal(_by_pair(first, "signals"), _by_pair(second, "signals"))


@pytest.mark.parametrize("name", strategy_names())
def test_every_strategy_run_stores_suspicion_for_every_candidate(topical_store, name):
    run = mine(topical_store, MineRequest(strategy=name, num_negatives=4,
                                          params=STRATEGY_PARAMS.get(name, {})))
    cands = topical_store.run_candidates(run.run_id)
    assert len(cands) and cands.suspicion.notna().all()
    assert cands.suspicion.between(0, 1).all() and (cands.scorer == "cold").all()
    expected = {"relative_score", "positive_similarity", "lexical", "cluster", "cross_query"}
    for reasons, signals in zip(cands.reasons, cands.signals):
        assert isinstance(json.loads(reasons), list)
        keys = set(json.loads(signals))
        assert {f"{n}{s}" for n in expected for s in ("", "_global_pct", "_query_pct")} <= keys
        assert "teacher" not in keys


def test_given_negatives_outside_the_pool_get_suspicion(tmp_path):
    from core.ingest import ingest

    rows = pd.DataFrame({
        "anchor": [f"question {i} about planets and stars" for i in range(4)],
        "positive": [f"planet {i} orbits a bright star" for i in range(4)],
        "negative": [f"a cooking recipe number {i} with flour" for i in range(4)],
    })
    path = tmp_path / "triplets.jsonl"
    rows.to_json(path, orient="records", lines=True)
    with Store(tmp_path / "ws.duckdb") as store:
        ingest(store, path)
        run = mine(store, MineRequest(strategy="top_k", num_negatives=1, pool_depth=1))
        cands = store.run_candidates(run.run_id)
        assert (cands.source == "given").any()
        assert cands.suspicion.notna().all()


# -- learning from decisions -----------------------------------------------------------------------
def test_learning_from_decisions(topical_ws, tmp_path):
    path, run_id = topical_ws
    with _open_copy(path, tmp_path) as store:
        cold = store.run_candidates(run_id).reset_index(drop=True)
        truth = _same_topic(cold)
        fn = cold[truth].sample(25, random_state=0)
        hn = cold[~truth].sample(25, random_state=0)

        def record(frame, label):
            for q, d in zip(frame.query_hash, frame.doc_hash):
                store.record_decision(q, d, label, "bot")

        record(fn.iloc[:19], "false_negative")
        record(hn, "hard_negative")
        with pytest.raises(WorkbenchError, match=(
                r"learning needs at least 20 false-negative and 20 hard-negative decisions on "
                rf"run {run_id}; it has 19 and 25")):
            learn_from_decisions(store, run_id)
        record(fn.iloc[19:], "false_negative")

        before = store.run_candidates(run_id)
        report = learn_from_decisions(store, run_id)
        after = store.run_candidates(run_id)
        assert (report.false_negatives, report.hard_negatives) == (25, 25)
        assert isinstance(report.cv_auc, float) and 0.0 <= report.cv_auc <= 1.0
        assert report.rescored == len(cold) and "positive_similarity" in report.features
        assert (after.scorer == "learned").all() and after.suspicion.between(0, 1).all()
        assert after.reasons.map(lambda r: json.loads(r)[0]).str.startswith(
            "model learned from 50 decisions").all()

        decided = after.decision.notna().to_numpy()
        held = ~decided
        assert held.sum() == len(cold) - 50
        cold_auc = roc_auc_score(truth[held], cold.suspicion[held])
        learned_auc = roc_auc_score(truth[held], after.suspicion[held])
        assert learned_auc >= cold_auc - 1e-9

        # Undecided candidates: the model fitted on every decision, anchored on the cold
        # suspicion. Decided ones: out-of-fold predictions, which differ from an in-sample fit.
        x, names = signal_matrix(before)
        labels = before.decision.map({"false_negative": 1.0, "hard_negative": 0.0}).to_numpy()
        cold_scores = before.suspicion.astype(float).to_numpy()
        scored = learned_suspicion(x, names, cold_scores, before.query_id.to_numpy(), labels)
        np.testing.assert_allclose(after.suspicion, scored.probability, atol=1e-5)
        assert report.features == scored.features and report.features[-1] == QUERY_EFFECT
        # What moved each undecided candidate is said when it moved it by 0.2 log-odds or more;
        # decided candidates get no such reason.
        said = after.reasons.map(json.loads)
        for prefixes, moved in ((QUERY_REASONS, scored.query_shift),
                                (CORRECTION_REASONS, scored.correction)):
            has = said.map(lambda r: any(t.startswith(prefixes) for t in r)).to_numpy()
            assert (has == (held & (np.abs(moved) >= 0.2))).all() and has.any()
        offset = np.log(np.clip(cold_scores, 1e-3, 1 - 1e-3) / np.clip(1 - cold_scores, 1e-3, 1))
        effect = query_effect(before.query_id.to_numpy(), labels, offset)
        offset = offset + effect
        in_sample = MonotoneLogistic().fit(x[decided], labels[decided], offset[decided])
        fitted = in_sample.predict_proba(x, offset)
        np.testing.assert_allclose(after.suspicion[held], fitted[held], atol=1e-5)
        # The report (and the run, which keeps it) names the weights and the surprising queries.
        weights = sorted(zip(names, in_sample.coef_), key=lambda p: -p[1])
        assert list(report.weights) == [signal_label(n) for n, _ in weights]
        np.testing.assert_allclose(list(report.weights.values()), [w for _, w in weights],
                                   atol=1e-4)
        per_query = pd.Series(effect).groupby(before.query_id.to_numpy()).first()
        per_query = per_query[per_query.abs() >= 0.2]
        assert set(report.query_effects) == set(per_query[per_query > 0].nlargest(5).index) | set(
            per_query[per_query < 0].nsmallest(5).index) and report.query_effects
        assert store.get_run(run_id).search["learned_model"] == report.summary()
        assert "learned weights (log-odds per standard deviation): " in report.text()
        assert np.abs(after.suspicion[decided] - fitted[decided]).max() > 1e-4
        # The cold suspicion travels in the signals, so learning again anchors on it, not on
        # this model's output.
        np.testing.assert_allclose(cold_suspicion(after), cold_scores, atol=1e-5)

        # Learning again (more decisions) replaces the previous model's note, never stacks it.
        extra = cold[truth & ~after.decision.notna().to_numpy()].head(2)
        record(extra, "false_negative")
        again = learn_from_decisions(store, run_id)
        relearned = store.run_candidates(run_id)
        assert again.false_negatives == 27
        notes = relearned.reasons.map(
            lambda r: [t for t in json.loads(r) if t.startswith("model learned from")])
        assert (notes.map(len) == 1).all()
        assert notes.map(lambda n: n[0].startswith("model learned from 52 decisions")).all()
        for prefixes in (QUERY_REASONS, CORRECTION_REASONS):
            assert relearned.reasons.map(
                lambda r: sum(t.startswith(prefixes) for t in json.loads(r))).max() == 1


def test_forgetting_a_learned_model_puts_the_cold_suspicion_back(topical_ws, tmp_path, capsys):
    """`learn --forget` (and the Review page's button): the cold scores, reasons and scorer come
    back (the very scores: the signals keep them as stored), the run forgets its model, the
    decisions stay; forgetting a cold run changes nothing."""
    from core.cli import main

    path, run_id = topical_ws
    with _open_copy(path, tmp_path) as store:
        cold = store.run_candidates(run_id).reset_index(drop=True)
        assert forget_learning(store, run_id) == 0
        truth = _same_topic(cold)
        for frame, label in ((cold[truth].head(25), "false_negative"),
                             (cold[~truth].head(25), "hard_negative")):
            for q, d in zip(frame.query_hash, frame.doc_hash):
                store.record_decision(q, d, label, "bot")
        report = learn_from_decisions(store, run_id)
        assert "learned_model" in store.get_run(run_id).search

        def provenance() -> dict:  # what an export's manifest says of the suspicion it used
            out = tmp_path / "train.jsonl"
            manifest = export_run(store, run_id, out, ExportOptions("triplet")).manifest_path
            return json.loads(manifest.read_text())["suspicion"]

        assert provenance() == {"scorer": "learned", "decisions": 50, "cv_auc": report.cv_auc,
                                "corrections": report.corrections, "weights": report.weights}
        workspace = str(store.path)
        assert main(["learn", "--workspace", workspace, "--run", str(run_id), "--forget"]) == 0
        assert capsys.readouterr().out == (
            f"run {run_id}: the cold suspicion is back on {len(cold)} candidates\n")
        back = store.run_candidates(run_id).reset_index(drop=True)
        assert (back.scorer == "cold").all()
        assert back.suspicion.tolist() == cold.suspicion.tolist()  # not one near-tie reordered
        assert back.reasons.map(json.loads).tolist() == cold.reasons.map(json.loads).tolist()
        assert "learned_model" not in store.get_run(run_id).search
        assert provenance() == {"scorer": "cold"}
        assert back.decision.notna().sum() == 50
        assert forget_learning(store, run_id) == 0
        assert main(["learn", "--workspace", workspace, "--forget"]) == 0
        assert "nothing to forget" in capsys.readouterr().out


def test_a_learned_model_rewrites_each_candidates_reasons_and_keeps_its_cold_suspicion(
        topical_ws, tmp_path):
    """DuckDB rewrites the stored texts when a model is learned: the note with the candidate's p
    comes first, a previous model's note goes, four reasons at most; the signals gain the cold
    suspicion (the float as stored) unless they hold it, whatever characters the texts carry."""
    path, run_id = topical_ws
    with _open_copy(path, tmp_path) as store:
        pairs = store.run_candidates(run_id)[["query_id", "doc_id"]].head(5)
        old_note = "model learned from 40 decisions (cross-validated ROC-AUC 0.70): p = 0.91"
        reasons = [[], ["labeled positive of the similar query 'caf\u00e9 \"x\" \\ y'"],
                   [old_note, "a", "b", "c", "d"], ["\u2603 snow", "two"], ["one"]]
        signals = [{}, {"lexical": 1.5, "a_pct": 0.25}, {"x": 1, COLD_KEY: 0.84625},
                   {"teacher": -0.125, "odd \"key\".name": 2.0}, {"lexical_pct": 0.5}]
        store.put_suspicion(run_id, pairs.assign(
            suspicion=0.5, reasons=[json.dumps(r) for r in reasons],
            signals=[json.dumps(s) for s in signals]), "cold")
        p = np.array([0.123456, 0.995, 0.5, 0.0049, 1.0])
        cold = np.array([0.73125, 0.1, 0.84625, 0.333333333, 0.5])
        note = "model learned from 60 decisions (cross-validated ROC-AUC 0.81)"
        why = [None, "its query's decisions raise it (+0.50 log-odds)", None, "x", None]
        store.put_learned_suspicion(run_id, pa.table({
            "query_id": pairs.query_id, "doc_id": pairs.doc_id, "suspicion": p, "cold": cold,
            "why": pa.array(why, pa.string()), "also": pa.array([None, "y", "z", None, None]),
        }), note, (NOTE_PREFIX, "a"), ["why", "also"], COLD_KEY, 4)
        after = pairs.merge(store.run_candidates(run_id), on=["query_id", "doc_id"])
        assert (after.scorer == "learned").all()
        np.testing.assert_allclose(after.suspicion, p, atol=1e-7)
        also = [None, "y", "z", None, None]
        for i, row in after.iterrows():
            expected = [f"{note}: p = {p[i]:.2f}", *[t for t in (why[i], also[i]) if t],
                        *[t for t in reasons[i] if not t.startswith((NOTE_PREFIX, "a"))]][:4]
            assert json.loads(row.reasons) == expected
            kept = json.loads(row.signals)
            assert kept == {**signals[i], COLD_KEY: kept[COLD_KEY]}
            assert np.float32(kept[COLD_KEY]) == np.float32(
                signals[i].get(COLD_KEY, cold[i]))
        pool = store.scored_pool(run_id, ["a_pct", 'odd "key".name', "teacher"], COLD_KEY)
        by_pair = {(q, d): r for q, d, r in zip(pool.column("query_id").to_pylist(),
                                                pool.column("doc_id").to_pylist(),
                                                pool.column("x").to_pylist())}
        assert [by_pair[(q, d)] for q, d in zip(pairs.query_id, pairs.doc_id)] == [
            [0.0, 0.0, 0.0], [0.25, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 2.0, -0.125],
            [0.0, 0.0, 0.0]]
        assert set(store.signal_keys(run_id)) >= {COLD_KEY, "lexical", 'odd "key".name'}


def test_relearning_is_due_every_n_decisions_once_each_label_has_its_minimum(topical_ws,
                                                                           tmp_path):
    """relearn_if_due (the Review page after a decision, the bench's second review curve):
    nothing below ``every`` decisions since the last scoring or below a label's minimum; a
    re-scored run once both are met; then nothing again until ``every`` more."""
    path, run_id = topical_ws
    with _open_copy(path, tmp_path) as store:
        cold = store.run_candidates(run_id).reset_index(drop=True)
        run = store.get_run(run_id)
        truth = _same_topic(cold)
        fn, hn = cold[truth].sample(30, random_state=1), cold[~truth].sample(30, random_state=1)

        def record(frame, label):
            for q, d in zip(frame.query_hash, frame.doc_hash):
                store.record_decision(q, d, label, "bot")

        record(hn.iloc[:25], "hard_negative")
        record(fn.iloc[:10], "false_negative")
        assert store.decisions_since_scored(run_id, run.dataset_id) == 35
        assert relearn_if_due(store, run_id, every=40) is None  # 35 < 40
        assert relearn_if_due(store, run_id, every=30) is None  # due, but 10 false negatives
        assert (store.run_candidates(run_id).scorer == "cold").all()
        record(fn.iloc[10:25], "false_negative")
        report = relearn_if_due(store, run_id, every=30)
        assert report is not None and (report.false_negatives, report.hard_negatives) == (25, 25)
        assert (store.run_candidates(run_id).scorer == "learned").all()
        assert store.decisions_since_scored(run_id, run.dataset_id) == 0
        record(fn.iloc[25:], "false_negative")
        assert relearn_if_due(store, run_id, every=30) is None  # 5 since the last scoring
        assert relearn_if_due(store, run_id, every=0) is None
        unscored = add_fake_run(store, run.dataset_id)  # a run without suspicion: nothing to do
        assert store.decisions_since_scored(unscored, run.dataset_id) == 55
        assert relearn_if_due(store, unscored, every=30) is None


# -- teacher ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["cross-encoder", "bi-encoder"])
def test_teacher_signal_is_stored_and_explained(planted, cross_encoder_dir, tiny_model_dir, kind):
    store, run = planted
    folder = cross_encoder_dir if kind == "cross-encoder" else tiny_model_dir
    taught = mine(store, MineRequest(strategy="curated", num_negatives=3, teacher=str(folder),
                                     teacher_kind=kind))
    cands = store.run_candidates(taught.run_id)
    assert taught.status == "done" and cands.suspicion.notna().all()
    # A later run re-uses this pool and its suspicion only with the same teacher read the same way
    other = "bi-encoder" if kind == "cross-encoder" else "cross-encoder"
    for teacher_kind, expected in ((kind, taught.run_id), (other, None)):
        request = MineRequest(strategy="curated", teacher=str(folder), teacher_kind=teacher_kind)
        found = find_reusable_run(store, taught.dataset_id, taught.model_fp, request,
                                  get_strategy("curated"), taught.pool_depth)
        assert (found and found.run_id) == expected
    for signals in cands.signals:
        assert {"teacher", "teacher_global_pct", "teacher_query_pct"} <= set(json.loads(signals))
    assert cands.reasons.str.contains("the teacher scores it").any()
    # The teacher counts in the cold suspicion: the same pool scores differently without it.
    plain = store.run_candidates(run.run_id)
    joined = _by_pair(cands, "suspicion").to_frame("taught").join(
        _by_pair(plain, "suspicion").rename("plain"), how="inner")
    assert len(joined) and not np.allclose(joined.taught, joined.plain)


def test_bi_encoder_teacher_uses_the_workspace_cache(tmp_path, tiny_model_dir):
    """Loaded with a workspace, a bi-encoder teacher scores exactly as the uncached one, encodes
    each document once however many pools hold it, and a second run finds every vector cached."""
    cached_store = Store(tmp_path / "teacher.duckdb")
    ctx = _synthetic_context()
    cached = load_teacher(str(tiny_model_dir), "bi-encoder", cached_store)
    plain = load_teacher(str(tiny_model_dir), "bi-encoder")
    assert cached.encode is not None and plain.encode is None
    # A bi-encoder teacher runs the torch backend's fused layers where this torch has them.
    import torch
    if torch.backends.mkldnn.is_available():
        layer = plain.model[0].auto_model.encoder.layer[0]
        assert type(layer.intermediate.dense).__name__ == "FusedLinear"
    calls: list[int] = []
    encode = cached.encode
    cached.encode = lambda texts, progress=None: calls.append(len(texts)) or encode(texts)
    detector = get_detector("teacher")
    for row, docs in [(1, np.arange(4, 20)), (0, np.arange(2, 12)), (2, np.arange(0, 20, 2))]:
        scores = (ctx.doc_vectors[docs] @ ctx.query_vectors[row]).astype(np.float32)
        ctx.teacher = cached
        fast = detector.compute(ctx, row, docs, scores, 0.5)
        ctx.teacher = plain
        slow = detector.compute(ctx, row, docs, scores, 0.5)
        np.testing.assert_allclose(fast.values, slow.values, atol=1e-5)
        assert fast.details == slow.details
    assert sum(calls) == 23  # each query and each document once (3 + 20)
    fingerprints = [m for m, name, _ in cached_store.list_models() if name.startswith("teacher ")]
    assert len(fingerprints) == 1  # a later run reads these vectors instead of encoding
    # Keyed by the plain model's fingerprint, so vectors cached before (or without) the fused
    # layers are found: the fused view's module tree differs, its vectors do not.
    from sentence_transformers import SentenceTransformer

    from core.embed import model_fingerprint
    assert fingerprints[0] == model_fingerprint(SentenceTransformer(str(tiny_model_dir),
                                                                    device="cpu"))
    texts = [*ctx.query_texts, *ctx.doc_texts]
    assert len(cached_store.cached_vectors(fingerprints[0], "", [text_hash(t) for t in texts])) == 23
    cached_store.close()


def test_bi_encoder_teacher_encodes_every_pool_in_one_call(tmp_path, tiny_model_dir):
    """Before scoring, the teacher encodes the queries and all pooled documents and positives at
    once (one cache lookup and one encode for the run), reported as progress over the texts the
    cache lacks; scoring the pools then encodes nothing."""
    store = Store(tmp_path / "teacher.duckdb")
    ctx = _synthetic_context()
    teacher = load_teacher(str(tiny_model_dir), "bi-encoder", store)
    calls: list[int] = []
    encode = teacher.encode
    teacher.encode = lambda texts, progress=None: calls.append(len(texts)) or encode(texts,
                                                                                     progress)
    reports: list[tuple[int, int]] = []
    ctx.progress = lambda done, total: reports.append((done, total))
    ctx.teacher = teacher
    detector = get_detector("teacher")
    pools = [(1, np.arange(4, 20)), (0, np.arange(2, 12)), (2, np.arange(0, 20, 2))]
    detector.prepare(ctx, pools)
    assert calls == [23]  # 3 queries and 20 documents
    assert reports[0] == (0, 23) and reports[-1] == (23, 23)
    for row, docs in pools:
        scores = (ctx.doc_vectors[docs] @ ctx.query_vectors[row]).astype(np.float32)
        detector.compute(ctx, row, docs, scores, 0.5)
    assert calls == [23]
    store.close()


def test_cross_encoder_teacher_scores_each_pair_once_across_runs(tmp_path, cross_encoder_dir,
                                                                 monkeypatch):
    """Loaded with a workspace, a cross-encoder teacher scores every pooled pair up front, in
    chunks it reports as progress, and keeps the scores: a later run that searches again scores
    nothing, and the scores are the model's own (a spy counts predict's pairs and passes them to
    the real model)."""
    from sentence_transformers import CrossEncoder

    calls: list[int] = []
    predict = CrossEncoder.predict
    monkeypatch.setattr(CrossEncoder, "predict", lambda self, pairs, *a, **kw: (
        calls.append(len(pairs)) or predict(self, pairs, *a, **kw)))
    store = Store(tmp_path / "ws.duckdb")
    ingest_tiny(store, write_beir(tmp_path / "beir", PLANTED_CORPUS, PLANTED_QUERIES,
                                  PLANTED_QRELS))
    import core.false_negatives.teacher as teacher_module

    monkeypatch.setattr(teacher_module, "PREDICT_CHUNK", 64)
    reports: list[tuple[str, int, int]] = []
    request = dict(strategy="curated", num_negatives=3, teacher=str(cross_encoder_dir))
    first = mine(store, MineRequest(**request), progress=lambda *r: reports.append(r))
    pool = store.run_candidates(first.run_id)
    distinct = pool[["query_hash", "doc_hash"]].drop_duplicates().shape[0]
    total = sum(calls)
    assert total >= distinct and calls[:-1] == [64] * (len(calls) - 1)  # 64 pairs a call
    teacher_reports = [(done, n) for phase, done, n in reports if phase == "teacher"]
    assert teacher_reports[-1] == (total, total) and len(teacher_reports) == len(calls)
    calls.clear()
    again = mine(store, MineRequest(**request, reuse_pool=False))
    assert "reused_pool_of" not in again.search and calls == []  # nothing scored again
    teacher = lambda frame: _by_pair(frame.assign(  # noqa: E731
        teacher=frame.signals.map(lambda s: json.loads(s)["teacher"])), "teacher")
    pd.testing.assert_series_equal(teacher(pool), teacher(store.run_candidates(again.run_id)))
    # The cached values are the model's: a query's teacher signal is its score minus the
    # positive's, as the model scores them now.
    row = pool.iloc[0]
    texts = store.dataset_frame(first.dataset_id, "documents").set_index("doc_id")["text"]
    query = store.dataset_frame(first.dataset_id, "queries").set_index("query_id").loc[
        row.query_id, "text"]
    positives = store.dataset_frame(first.dataset_id, "positives")
    positive_ids = positives.loc[positives.query_id == row.query_id, "doc_id"].tolist()
    model = CrossEncoder(str(cross_encoder_dir), device="cpu")
    scores = predict(model, [(query, texts[d]) for d in [row.doc_id, *positive_ids]])
    assert json.loads(row.signals)["teacher"] == pytest.approx(
        float(scores[0] - min(scores[1:])), abs=1e-4)
    store.close()


def test_load_teacher_errors(tmp_path, planted):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{", encoding="utf-8")
    with pytest.raises(WorkbenchError, match="teacher folder .*bad' could not be loaded"):
        load_teacher(str(bad))
    with pytest.raises(WorkbenchError, match="could not be loaded"):
        load_teacher(str(tmp_path / "missing"), "bi-encoder")
    with pytest.raises(WorkbenchError, match="teacher kind must be one of bi-encoder, cross-enc"):
        load_teacher(str(bad), "llm")
    store, _ = planted
    with pytest.raises(WorkbenchError, match="could not be loaded"):
        mine(store, MineRequest(strategy="curated", teacher=str(bad)))
    assert store.list_runs()[0].status == "failed"


# -- curated ---------------------------------------------------------------------------------------
def _stub_state(suspicion: np.ndarray, decisions: dict[tuple[int, int], str],
                params) -> CuratedState:
    """Curated's state over a stub scorer that serves fixed suspicion values."""
    scorer = SimpleNamespace(score=lambda row, docs, scores, pos: SimpleNamespace(
        suspicion=suspicion[docs]))
    ctx = SimpleNamespace(suspicion=scorer, decisions=decisions, query_ids=["q"])
    return get_strategy("curated").prepare(ctx, params)


def test_curated_select_puts_reviewed_first_and_holds_back_suspects():
    from core.mining import QueryPool

    strategy = get_strategy("curated")
    params = parse_params(strategy, {"max_suspicion": 0.5})
    suspicion = np.array([0.9, 0.8, 0.2, 0.95, 0.1, 0.3, 0.4], dtype=np.float32)
    decisions = {(0, 3): "hard_negative", (0, 2): "false_negative", (0, 5): "unsure",
                 (0, 0): "hard_negative"}
    pool = QueryPool("q", np.arange(7), np.linspace(0.9, 0.3, 7).astype(np.float32), 0.8, True)
    sel = strategy.select(pool, 4, params, _stub_state(suspicion, decisions, params),
                          np.random.default_rng(0))
    assert sel.selected.tolist() == [0, 3, 4, 6]
    assert sel.eligible.tolist() == [True, False, False, True, True, False, True]
    assert sel.removed == {"above_suspicion": 1, "decided_false_negative_or_unsure": 2}
    with pytest.raises(WorkbenchError, match=r"max_suspicion must be in \[0, 1\]"):
        parse_params(strategy, {"max_suspicion": 1.5})


def test_choose_threshold_takes_the_lowest_that_reaches_the_hardness():
    from core.mining.curated import choose_threshold

    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    suspicion = np.array([0.95, 0.3, 0.9, 0.1, 0.2])
    none = np.zeros(5, dtype=bool)
    # k = 2; plain top-k takes 0.9 and 0.8 (0.85). At or below a threshold of 0.1 curated takes
    # 0.6 alone; from 0.2: 0.6, 0.5 (0.55); from 0.3: 0.8, 0.6 (0.7); from 0.9: 0.8, 0.7 (0.75);
    # from 0.95: 0.9, 0.8.
    for target, threshold, hardness in ((0.5, 0.1, 0.6), (0.8, 0.3, 0.7), (0.85, 0.9, 0.75),
                                        (1.0, 0.95, 0.85)):
        choice = choose_threshold([(scores, suspicion, none, none)], 2, target)
        assert choice == {"max_suspicion": threshold, "hardness": hardness,
                          "pool_hardest": 0.85, "target": target, "reached": True}
    # A reviewed hard negative is always taken (0.5 here), a rejected pair never (0.9): the
    # best curated can then do is 0.5 and 0.8, short of plain top-k's 0.85.
    reviewed, rejected = none.copy(), none.copy()
    reviewed[4], rejected[0] = True, True
    choice = choose_threshold([(scores, suspicion, reviewed, rejected)], 2, 1.0)
    assert choice == {"max_suspicion": 1.0, "hardness": 0.65, "pool_hardest": 0.85,
                      "target": 1.0, "reached": False}


def test_curated_parameters_are_checked():
    strategy = get_strategy("curated")
    with pytest.raises(WorkbenchError, match=r"min_relative_hardness must be in \(0, 1\]"):
        parse_params(strategy, {"min_relative_hardness": 1.2})
    with pytest.warns(UserWarning, match="ignores max_suspicion"):
        parse_params(strategy, {"min_relative_hardness": 0.9, "max_suspicion": 0.5})


def test_curated_reaches_the_hardness_asked_for(topical_ws, tmp_path):
    """A hardness target chooses the run's threshold: the lowest that reaches it, recorded with
    the run and honoured by the export."""
    from core.export import run_quality

    path, _ = topical_ws
    k = 4
    with _open_copy(path, tmp_path) as store:
        for target in (0.6, 0.9):
            run = mine(store, MineRequest(strategy="curated", num_negatives=k,
                                          params={"min_relative_hardness": target}))
            choice = run.search["strategy_choice"]
            assert choice["reached"] and choice["target"] == target
            quality = run_quality(store, run.run_id)
            assert quality["relative_hardness"] >= target - 1e-3
            assert quality["hardness"] == pytest.approx(choice["hardness"], abs=1e-3)
            cands = store.run_candidates(run.run_id)
            assert (cands.loc[cands.eligible, "suspicion"]
                    <= choice["max_suspicion"] + 1e-6).all()
            # one step lower would not have reached the target
            assert choice["max_suspicion"] > 0
            lower = round(choice["max_suspicion"] - 0.01, 2)
            below = mine(store, MineRequest(strategy="curated", num_negatives=k,
                                            params={"max_suspicion": lower}))
            assert run_quality(store, below.run_id)["relative_hardness"] < target
        assert "held back above suspicion" in choice["text"]
        # the runs tables say what was chosen beside the parameters asked for
        from core.overview import workspace_summary
        from core.runs import runs_frame

        frame = runs_frame(store).set_index("run")
        assert frame.loc[run.run_id, "chosen"] == choice["text"]
        assert pd.isna(frame.loc[below.run_id, "chosen"])
        overview = workspace_summary(store.path).runs.set_index("run")
        assert overview.loc[run.run_id, "chosen"] == choice["text"]
        assert overview.loc[below.run_id, "chosen"] == ""


def test_curated_respects_suspicion_and_decisions(topical_ws, tmp_path):
    path, _ = topical_ws
    k, ceiling = 4, 0.6
    with _open_copy(path, tmp_path) as store:
        run = mine(store, MineRequest(strategy="curated", num_negatives=k,
                                      params={"max_suspicion": ceiling}))
        cands = store.run_candidates(run.run_id)
        sel = cands[cands.selected]
        assert run.short_queries == [] and (sel.groupby("query_id").size() == k).all()
        assert len(sel.query_id.unique()) == run.n_queries
        assert (cands.loc[cands.eligible, "suspicion"] <= ceiling + 1e-6).all()
        assert run.filter_counts["above_suspicion"] > 0
        # The hardest candidates that pass: nothing eligible outranks a selected one unchosen.
        for _, group in cands.groupby("query_id"):
            eligible = group[group.eligible].sort_values("rank")
            assert eligible.selected.tolist()[:k] == [True] * k

        # Decide: each query's top selected pair is a false negative; its most suspicious
        # candidate a hard negative (an annotator overrides the suspicion).
        first_sel = sel.sort_values("rank").groupby("query_id").head(1)
        suspects = cands.sort_values("suspicion", ascending=False).groupby("query_id").head(1)
        assert (suspects.suspicion > ceiling).all()
        for frame, label in ((first_sel, "false_negative"), (suspects, "hard_negative")):
            for q, d in zip(frame.query_hash, frame.doc_hash):
                store.record_decision(q, d, label, "ann")

        again = mine(store, MineRequest(strategy="curated", num_negatives=k,
                                        params={"max_suspicion": ceiling}))
        cands2 = store.run_candidates(again.run_id)
        sel2 = cands2[cands2.selected]
        pairs = set(zip(sel2.query_id, sel2.doc_id))
        assert not pairs & set(zip(first_sel.query_id, first_sel.doc_id))
        assert set(zip(suspects.query_id, suspects.doc_id)) <= pairs
        assert again.short_queries == [] and (sel2.groupby("query_id").size() == k).all()
        above = sel2[sel2.suspicion > ceiling]
        assert len(above) and (above.decision == "hard_negative").all()
        assert again.filter_counts["decided_false_negative_or_unsure"] == len(first_sel)

        # The export follows: reviewed hard negatives first, no false negative, and nothing
        # above the ceiling that an annotator did not confirm.
        planned = planned_negatives(store, again.run_id).merge(
            cands2[["query_id", "doc_id", "suspicion", "decision"]], on=["query_id", "doc_id"])
        assert len(planned) == k * again.n_queries
        assert not (planned.decision == "false_negative").any()
        risky = planned[planned.suspicion > ceiling]
        assert (risky.decision == "hard_negative").all()
        firsts = planned[planned.idx == 1]
        assert (firsts.decision == "hard_negative").all() and len(firsts) == again.n_queries


def test_signal_texts_are_the_json_of_the_rounded_features():
    from core.false_negatives.suspicion import signal_texts

    rng = np.random.default_rng(0)
    features = {"relative_score": rng.normal(size=500).astype(np.float32),
                "lexical_global_pct": rng.random(500).astype(np.float32),
                "cluster": np.zeros(500, np.float32)}
    expected = [json.dumps({n: round(float(v[i]), 5) for n, v in features.items()})
                for i in range(500)]
    assert signal_texts(features, 500) == expected
    features["cluster"][7] = np.nan  # JSON spells it NaN, as json.dumps does
    assert signal_texts(features, 9)[7] == json.dumps(
        {n: round(float(v[7]), 5) for n, v in features.items()})
    assert signal_texts({}, 2) == ["{}", "{}"]
