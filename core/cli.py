"""Command line: python -m core {ingest, mine, export, datasets, runs, strategies, queue, decide,
learn, undo, decisions export|import, audit draw|report, bench}.

Errors a user can cause print one sentence on stderr and exit 1, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Any, Callable, Sequence

from core.errors import WorkbenchError

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _strategy_help() -> str:
    from core.mining import get_strategy, strategy_names

    lines = ["strategies (--strategy) and their parameters (--param NAME=VALUE):"]
    for name in strategy_names():
        strategy = get_strategy(name)
        fields = dataclasses.fields(strategy.Params)
        params = ", ".join(f"{f.name}={f.default!r}" for f in fields) or "no parameters"
        lines.append(f"  {name:<15} {strategy.summary}\n  {'':<15} [{params}]")
    return "\n".join(lines)


def _key_values(pairs: Sequence[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise WorkbenchError(f"{flag} expects NAME=VALUE, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


class _TqdmPhases:
    """Drive one tqdm bar per mining phase from the core progress callback."""

    def __init__(self) -> None:
        self._bars: dict[str, Any] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        from tqdm import tqdm

        bar = self._bars.get(phase)
        if bar is None:
            # Search and selection report in one jump: their rate would read millions a second.
            timed = phase.startswith("encode") or phase == "teacher"
            bar = self._bars[phase] = tqdm(
                total=total, desc=phase, unit="item", file=sys.stderr,
                bar_format=None if timed else "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}]")
        bar.total = total
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()


def cmd_ingest(args: argparse.Namespace) -> int:
    from core.ingest import read_dataset
    from core.store import Store

    sources = [(f, p) for f, p in (("beir", args.beir), ("pairs", args.pairs), ("flag", args.flag),
                                   (None, args.path), ("vectors", args.vectors)) if p]
    if len(sources) != 1:
        raise WorkbenchError("give exactly one of --beir DIR, --pairs FILE, --flag FILE, --path "
                             "or --vectors DIR")
    if sources[0][0] == "vectors":
        return _ingest_vectors(args)
    fmt, path = sources[0]
    options: dict[str, Any] = {}
    if args.query_column:
        options["query_column"] = args.query_column
    if args.positive_column:
        options["positive_column"] = args.positive_column
    if args.negative_columns:
        options["negative_columns"] = [c.strip() for c in args.negative_columns.split(",")]
    # Everything is validated before the workspace is opened: bad input leaves no file behind.
    content, report = read_dataset(path, format=fmt, split=args.split, name=args.name, **options)
    info = Store(args.workspace).add_dataset(content)
    print(f"ingested dataset {info.name!r} (id {info.dataset_id}, {report.format}): "
          f"{info.n_queries} queries, {info.n_documents} documents, {info.n_positives} positives")
    counts = report.counts
    if dataclasses.is_dataclass(counts):
        counts = dataclasses.asdict(counts)
    for key, value in counts.items():
        print(f"  {key}: {value}")
    for warning in report.warnings:
        print(f"  warning: {warning}")
    return 0


def _ingest_vectors(args: argparse.Namespace) -> int:
    from core.store import Store
    from core.vectors import ingest_vectors

    report = ingest_vectors(Store(args.workspace), args.vectors, split=args.split, name=args.name)
    info = report.dataset
    print(f"ingested dataset {info.name!r} (id {info.dataset_id}, precomputed vectors of "
          f"{report.model!r}, {report.dim} dimensions{'' if report.texts else ', no texts'}): "
          f"{info.n_queries} queries, {info.n_documents} documents, {info.n_positives} positives")
    print(f"  vectors added to the cache: {report.vectors_added}")
    print(f"  mine it with: python -m core mine --workspace {args.workspace} "
          f"--model {report.fingerprint}")
    for warning in report.warnings:
        print(f"  warning: {warning}")
    return 0


def _search_line(search: dict) -> str:
    """How a run's pool was searched, in one line."""
    if "reused_pool_of" in search:
        return f"re-used the stored pool of run {search['reused_pool_of']} (no search)"
    if "grown_from" in search:
        return (f"extended the stored pool of run {search['grown_from']} (an earlier version of "
                f"the dataset) with {search['new_documents']} new or changed documents; "
                f"{search['searched_again']} queries searched again")
    if search.get("index") == "ivf":
        return (f"IVF index, {search['nlist']} lists, nprobe {search['nprobe']}: recall@"
                f"{search['depth']} {search['recall']:.3f} against exact search on "
                f"{search['sample']} queries")
    return f"{search.get('index', 'flat')} index (exact)"


def cmd_mine(args: argparse.Namespace) -> int:
    from core.backends import get_backend
    from core.mine import MineRequest, mine
    from core.mining import get_strategy
    from core.store import Store

    get_strategy(args.strategy)
    get_backend(args.backend)
    store = Store(args.workspace)
    request = MineRequest(
        strategy=args.strategy, num_negatives=args.num_negatives,
        params=_key_values(args.param, "--param"), dataset=args.dataset, model=args.model,
        query_prompt=args.query_prompt, doc_prompt=args.doc_prompt, seed=args.seed,
        pool_depth=args.pool_depth, batch_size=args.batch_size, teacher=args.teacher,
        teacher_kind=args.teacher_kind, backend=args.backend, reuse_pool=not args.fresh_search,
    )
    dataset = store.get_dataset(args.dataset)
    print(f"mining dataset {dataset.name!r} with {args.strategy}", file=sys.stderr)
    run = mine(store, request, progress=None if args.quiet else _TqdmPhases())
    print(f"run {run.run_id}: {run.strategy} {json.dumps(run.params)} on {dataset.name!r}, "
          f"{run.n_queries} queries, {run.num_negatives} negatives each, model {run.model}")
    for rule, count in run.filter_counts.items():
        print(f"  {rule}: {count}")
    if run.short_queries:
        shown = ", ".join(run.short_queries[:10])
        more = "" if len(run.short_queries) <= 10 else f" and {len(run.short_queries) - 10} more"
        print(f"  queries short of {run.num_negatives} negatives: {shown}{more}")
    if run.search:
        print("  search: " + _search_line(run.search))
    if run.search.get("strategy_choice"):
        print("  " + run.strategy + ": " + run.search["strategy_choice"]["text"])
    if run.search.get("suspicion_weights"):
        from core.false_negatives.suspicion import weights_text

        print("  suspicion weights: " + weights_text(run.search["suspicion_weights"]))
    print("  timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in run.timings.items()))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from core.export import ExportOptions, export_run
    from core.export_quality import quality_text
    from core.store import Store

    store = Store(args.workspace)
    options = ExportOptions(
        format=args.format, apply_decisions=not args.ignore_decisions,
        promote_false_negatives=args.promote_false_negatives, include_scores=args.scores,
        only_reviewed=args.only_reviewed, num_negatives=args.num_negatives,
        max_false_negatives=args.max_false_negatives,
    )
    result = export_run(store, args.run, args.out, options)
    print(f"wrote {result.rows} rows for {result.queries} queries to {result.path} "
          f"(manifest {result.manifest_path})")
    for key, value in result.counts.items():
        print(f"  {key}: {value}")
    print("  negatives: " + quality_text(result.quality))
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from core.store import Store

    for d in Store(args.workspace).list_datasets(include_inactive=args.all):
        state = "" if d.active else " (replaced)"
        print(f"{d.dataset_id}\t{d.name}{state}\t{d.format}\t{d.n_queries} queries\t"
              f"{d.n_documents} documents\t{d.n_positives} positives\t{d.source}")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from core.runs import run_choice
    from core.store import Store

    for r in Store(args.workspace).list_runs():
        total = r.timings.get("total")
        took = f"{total:.1f}s" if total is not None else "-"
        chosen = f"\t{run_choice(r)}" if run_choice(r) else ""
        print(f"{r.run_id}\t{r.status}\t{r.strategy}\t{json.dumps(r.params)}\tk={r.num_negatives}"
              f"\t{r.n_queries or 0} queries\t{len(r.short_queries)} short\t{took}\t{r.model}"
              + chosen)
    return 0


def cmd_strategies(args: argparse.Namespace) -> int:
    print(_strategy_help())
    return 0


def cmd_decide(args: argparse.Namespace) -> int:
    from core.review import decide
    from core.store import Store

    decision_id = decide(Store(args.workspace), args.run, args.query, args.doc, args.label,
                         args.annotator, args.note)
    print(f"recorded decision {decision_id}: {args.label} for query {args.query!r}, "
          f"document {args.doc!r}")
    return 0


def cmd_queue(args: argparse.Namespace) -> int:
    import pandas as pd

    from core.judging import write_queue
    from core.review import review_head
    from core.store import Store

    if args.limit < 1:
        raise WorkbenchError(f"--limit must be at least 1, got {args.limit}")
    store = Store(args.workspace)
    if args.out:
        written = write_queue(store, args.run, args.out, args.limit, args.query)
        print(f"wrote the next {written.rows:,} candidates of the review queue "
              f"({written.queries:,} queries) to {written.path}; fill each line's label "
              "(hard_negative, false_negative or unsure) and merge it with `decisions import "
              "--in FILE --annotator NAME`")
        return 0
    run = store.get_run(args.run)
    rows = review_head(store, run.run_id, args.limit, args.query)  # ids and reasons, no texts
    if rows.empty:
        print(f"run {run.run_id}: every candidate is decided")
    for i, r in enumerate(rows.itertuples(index=False), 1):
        suspicion = "-" if pd.isna(r.suspicion) else f"{r.suspicion:.2f}"
        export = "exported" if r.would_export else "held back"
        reasons = json.loads(r.reasons) if isinstance(r.reasons, str) else []
        print(f"{i}\t{r.query_id}\t{r.doc_id}\tsuspicion {suspicion}\t{export}\t"
              f"{reasons[0] if reasons else ''}")
    return 0


def cmd_learn(args: argparse.Namespace) -> int:
    from core.false_negatives.learning import forget_learning, learn_from_decisions
    from core.store import Store

    store = Store(args.workspace)
    if args.forget:
        run = store.get_run(args.run)
        restored = forget_learning(store, run.run_id)
        print(f"run {run.run_id}: the cold suspicion is back on {restored} candidates" if restored
              else f"run {run.run_id}: its suspicion is the cold one already; nothing to forget")
        return 0
    print(learn_from_decisions(store, args.run, args.min_per_label).text())
    return 0


def cmd_undo(args: argparse.Namespace) -> int:
    from core.store import Store

    undone = Store(args.workspace).retract_last_decision(args.annotator)
    if undone is None:
        print(f"annotator {args.annotator!r} has no decision to undo")
    else:
        print(f"undid decision {undone.decision_id}: {undone.label} for query "
              f"{undone.query_id!r}, document {undone.doc_id!r}")
    return 0


def cmd_decisions(args: argparse.Namespace) -> int:
    from core.decisions import export_decisions, import_decisions, import_summary
    from core.store import Store

    store = Store(args.workspace)
    if args.action == "export":
        written = export_decisions(store, args.out)
        print(f"wrote {written.decisions} decisions ({written.retracted} retracted) to "
              f"{written.path}")
    else:
        print(import_summary(import_decisions(store, args.in_path, args.annotator)))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from core.audit import audit_report, draw_audit
    from core.store import Store

    store = Store(args.workspace)
    if args.action == "draw":
        audit = draw_audit(store, args.run, args.size, args.seed, args.annotator,
                           args.num_negatives, args.max_false_negatives)
        print(f"audit {audit.audit_id} of run {audit.run_id}: drew {audit.size:,} of the "
              f"{audit.exported:,} negatives an export of {audit.num_negatives} per query takes "
              f"(seed {audit.seed}); decide them in this order (the app's Export page sends "
              "them to Review), then run `audit report`")
        pairs = store.audit_outcomes(audit.audit_id)
    else:
        report = audit_report(store, args.audit, args.run)
        print(report.text())
        if not args.pairs:
            return 0
        pairs = store.audit_outcomes(report.audit.audit_id)
    print("position\tquery_id\tdoc_id\tdecision")
    for row in pairs.itertuples(index=False):
        decision = "" if row.decision is None or row.decision != row.decision else row.decision
        print(f"{row.position + 1}\t{row.query_id}\t{row.doc_id}\t{decision}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with the CLI's error contract: one sentence on stderr, exit code 1."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {self.prog}: {message}", file=sys.stderr)
        sys.exit(1)


def cmd_bench(args: argparse.Namespace) -> int:
    from pathlib import Path

    from core.bench import BenchConfig, dumps, format_table, run_hidden_positive

    try:
        budgets = tuple(int(b) for b in args.review_budget.split(",") if b.strip())
    except ValueError as err:
        raise WorkbenchError(
            f"--review-budget expects comma-separated integers, got {args.review_budget!r}"
        ) from err
    config = BenchConfig(
        beir=Path(args.beir), k=args.k, budgets=budgets, learn_decisions=args.learn_decisions,
        relearn_every=args.relearn_every, full_split=args.full_split, cache=Path(args.cache),
        strategies=tuple(s.strip() for s in args.strategies.split(",")) if args.strategies else (),
        teacher=args.teacher, teacher_kind=args.teacher_kind, model=args.model,
    )
    if args.json and (Path(args.json).is_dir() or not Path(args.json).parent.is_dir()):
        raise WorkbenchError(f"cannot write the rows to {args.json}: give a file in an existing "
                             "folder")

    def report(row: dict) -> None:
        print(dumps(row), flush=True)

    rows = run_hidden_positive(config, report)
    if args.json:  # written whole at the end: a failed or interrupted run leaves the old file
        from core.files import atomic_write

        text = "".join(dumps(row) + "\n" for row in rows).encode("utf-8")
        atomic_write(Path(args.json), lambda handle: handle.write(text))
    print()
    print(format_table(rows))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from core.false_negatives.learning import RELEARN_EVERY  # (the mine epilog loads it anyway)

    parser = _Parser(prog="python -m core", description=(
        "Hard-negative mining workbench: ingest retrieval data, mine negatives, review, export."))
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler: Callable[[argparse.Namespace], int], help_text: str,
                **kwargs: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, **kwargs)
        p.add_argument("--workspace", required=True, help="workspace DuckDB file")
        p.set_defaults(handler=handler)
        return p

    p = command("ingest", cmd_ingest, "import a dataset into the workspace")
    p.add_argument("--beir", help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv)")
    p.add_argument("--pairs", help="sentence-transformers pair/triplet file (.jsonl, .csv, "
                   ".parquet) or a Hugging Face save_to_disk folder")
    p.add_argument("--flag", help="FlagEmbedding JSONL ({query, pos, neg})")
    p.add_argument("--path", help="any of the above; the format is detected")
    p.add_argument("--vectors", help="precomputed embeddings: a folder with embeddings.json "
                   "({\"model\": NAME}), corpus/queries vectors (.vectors.parquet with id + "
                   "vector, or .npy beside corpus.jsonl/queries.jsonl) and qrels/<split>.tsv; "
                   "mine it with --model precomputed:NAME")
    p.add_argument("--split", help="qrels split of a BEIR folder (e.g. train, test, labeled)")
    p.add_argument("--name", help="dataset name (default: the folder or file name)")
    p.add_argument("--query-column", help="pairs: the query/anchor column")
    p.add_argument("--positive-column", help="pairs: the positive column")
    p.add_argument("--negative-columns", help="pairs: comma-separated negative columns")

    p = command("mine", cmd_mine, "mine hard negatives with a strategy",
                epilog=_strategy_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    from core.mining import strategy_names

    p.add_argument("--strategy", default="curated", metavar="STRATEGY",
                   help="one of: " + ", ".join(strategy_names()) + " (default: curated)")
    p.add_argument("--num-negatives", type=int, default=5, help="negatives per query (5)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a strategy parameter; repeat for several")
    p.add_argument("--dataset", help="dataset name (default: the newest)")
    p.add_argument("--model", help="sentence-transformers model: a local folder or hub id "
                   "(default: the bundled all-MiniLM-L6-v2), or precomputed:NAME for vectors "
                   "ingested with ingest --vectors")
    p.add_argument("--query-prompt", default="", help="prepended to queries, e.g. 'query: '")
    p.add_argument("--doc-prompt", default="", help="prepended to documents, e.g. 'passage: '")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pool-depth", type=int, default=100,
                   help="candidates stored per query (100)")
    p.add_argument("--batch-size", type=int, default=32,
                   help="texts per forward pass (32, sentence-transformers' default: 64 "
                   "encodes a little faster and peaks about 300 MB higher; the onnx and "
                   "openvino backends take at most 16 at once)")
    from core.backends import DEFAULT_BACKEND, backend_names

    p.add_argument("--backend", default=DEFAULT_BACKEND, metavar="BACKEND",
                   help="how the model encodes, one of: " + ", ".join(backend_names())
                   + " (torch is fp32; the onnx and openvino models are built once and kept "
                   "in model-cache/ beside the workspace)")
    p.add_argument("--teacher", help="a second model that rescores candidates for the "
                   "false-negative suspicion: a local folder or hub id")
    p.add_argument("--teacher-kind", default="cross-encoder",
                   help="cross-encoder (default) or bi-encoder")
    p.add_argument("--fresh-search", action="store_true",
                   help="search again even when an earlier run's stored pool could be re-used "
                   "(or, for a re-ingested dataset, extended with the new documents)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = command("export", cmd_export, "export a run's negatives for training")
    from core.export import FORMATS

    p.add_argument("--format", required=True, choices=sorted(FORMATS), metavar="FORMAT",
                   help="one of: " + ", ".join(sorted(FORMATS)))
    p.add_argument("--out", required=True, help="output file: .jsonl, .parquet or .csv")
    p.add_argument("--run", type=int, help="run id (default: the newest finished run)")
    p.add_argument("--num-negatives", type=int, help="negatives per query (default: the run's)")
    p.add_argument("--ignore-decisions", action="store_true",
                   help="export the miner's selection without annotators' decisions")
    p.add_argument("--promote-false-negatives", action="store_true",
                   help="add pairs marked false_negative as positives (RLHN relabeling)")
    p.add_argument("--only-reviewed", action="store_true",
                   help="export only negatives an annotator marked hard_negative")
    p.add_argument("--max-false-negatives", type=int, metavar="N",
                   help="leave out queries with more than N pairs marked false_negative (RLHN "
                        "drops queries with more than 8)")
    p.add_argument("--scores", action="store_true", help="include scores")

    p = command("datasets", cmd_datasets, "list datasets")
    p.add_argument("--all", action="store_true", help="include replaced versions")
    command("runs", cmd_runs, "list mining runs")
    sub.add_parser("strategies", help="list mining strategies").set_defaults(
        handler=cmd_strategies)

    p = command("decide", cmd_decide, "record an annotator's decision on a candidate")
    p.add_argument("--query", required=True, help="query id")
    p.add_argument("--doc", required=True, help="document id")
    p.add_argument("--label", required=True, choices=["hard_negative", "false_negative", "unsure"])
    p.add_argument("--annotator", required=True)
    p.add_argument("--note")
    p.add_argument("--run", type=int, help="run whose dataset holds the ids (default: newest)")

    p = command("queue", cmd_queue, "list the review queue's next candidates, or write them "
                "with their texts for a judge outside the app (--out)")
    p.add_argument("--run", type=int, help="run (default: the newest finished run)")
    p.add_argument("--limit", type=int, default=20, help="candidates (20)")
    p.add_argument("--query", help="only this query's candidates")
    p.add_argument("--out", help="write a .jsonl queue file to judge; `decisions import` reads "
                   "it back")

    p = command("learn", cmd_learn, "learn the false-negative suspicion from decisions")
    p.add_argument("--run", type=int, help="run to re-score (default: the newest finished run)")
    p.add_argument("--min-per-label", type=int, default=20,
                   help="decisions of each label needed (20)")
    p.add_argument("--forget", action="store_true",
                   help="put the cold suspicion back instead (the decisions stay)")

    p = command("undo", cmd_undo, "undo an annotator's last decision")
    p.add_argument("--annotator", required=True)

    actions = sub.add_parser(
        "decisions", help="export or import annotators' decisions (JSONL)",
        description="export a workspace's decisions to JSONL, or import (merge) such a file",
    ).add_subparsers(dest="action", required=True)
    p = actions.add_parser("export", help="write every decision to a JSONL file")
    p.add_argument("--workspace", required=True, help="workspace DuckDB file")
    p.add_argument("--out", required=True, help="output .jsonl file")
    p.set_defaults(handler=cmd_decisions)
    p = actions.add_parser("import", help="merge a decisions JSONL file (idempotent)")
    p.add_argument("--workspace", required=True, help="workspace DuckDB file")
    p.add_argument("--in", dest="in_path", required=True,
                   help="decisions .jsonl file, or a queue file with labels filled in")
    p.add_argument("--annotator", help="for lines that name no annotator (a judged queue file)")
    p.set_defaults(handler=cmd_decisions)

    actions = sub.add_parser(
        "audit", help="estimate an export's false-negative rate from a random sample",
        description="draw a random sample of the negatives a run's export takes; decisions on it "
        "estimate the export's false-negative rate",
    ).add_subparsers(dest="action", required=True)
    p = actions.add_parser("draw", help="draw a sample of the exported negatives (prints it)")
    p.add_argument("--workspace", required=True, help="workspace DuckDB file")
    p.add_argument("--run", type=int, help="run to audit (default: the newest finished run)")
    p.add_argument("--size", type=int, default=100, help="pairs to draw (100)")
    p.add_argument("--seed", type=int, help="seed of the draw (default: random, printed)")
    p.add_argument("--num-negatives", type=int,
                   help="negatives per query of the export to audit (default: the run's k)")
    p.add_argument("--max-false-negatives", type=int, metavar="N",
                   help="audit the export that leaves out queries with more than N pairs marked "
                        "false_negative (export --max-false-negatives)")
    p.add_argument("--annotator", help="who drew it (recorded with the audit)")
    p.set_defaults(handler=cmd_audit)
    p = actions.add_parser("report", help="the estimate from the audit's decisions so far")
    p.add_argument("--workspace", required=True, help="workspace DuckDB file")
    p.add_argument("--audit", type=int, help="audit id (default: the newest)")
    p.add_argument("--run", type=int, help="the newest audit of this run")
    p.add_argument("--pairs", action="store_true", help="also list the pairs and decisions")
    p.set_defaults(handler=cmd_audit)

    p = sub.add_parser("bench", help="run a benchmark", description="run a benchmark")
    p.add_argument("benchmark", choices=["hidden-positive"],
                   help="hidden-positive: the protocol of BENCHMARK.md")
    p.add_argument("--beir", required=True, help="BEIR folder with qrels/test.tsv (and "
                   "qrels/labeled.tsv, else the labeled split is derived)")
    p.add_argument("--k", type=int, default=5, help="negatives per query (5)")
    p.add_argument("--review-budget", default="0,1,2,5,10",
                   help="reviews per query for the review curve (0,1,2,5,10)")
    p.add_argument("--learn-decisions", type=int, default=200,
                   help="simulated decisions the learned suspicion is fit on (200; 0 skips)")
    p.add_argument("--relearn-every", type=int, default=RELEARN_EVERY,
                   help=f"a second review curve re-learns every N decisions, as the Review "
                   f"page does ({RELEARN_EVERY}; 0 skips it)")
    p.add_argument("--full-split", default="test", help="qrels split with all judgements")
    p.add_argument("--cache", default="data/workspaces/bench-cache.duckdb",
                   help="workspace that caches vectors between benchmark runs")
    p.add_argument("--strategies", help="comma-separated strategies (default: all registered)")
    p.add_argument("--model", help="mining model (local folder or hub id; default: the bundled "
                   "all-MiniLM-L6-v2). Hardness is then this model's cosine, not the "
                   "BENCHMARK.md baselines'")
    p.add_argument("--teacher", help="a second model every run's suspicion consults (local "
                   "folder or hub id), as mine --teacher")
    p.add_argument("--teacher-kind", default="cross-encoder",
                   help="cross-encoder (default) or bi-encoder (a sentence-transformers model)")
    p.add_argument("--json", help="also write the JSON lines to this file")
    p.set_defaults(handler=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from core.memory import return_large_blocks

    return_large_blocks()  # encoding's activations go back to the system (see core.memory)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except WorkbenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (OSError, MemoryError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
