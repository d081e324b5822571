"""The workspace schema: numbered migrations, applied in order on open."""

from __future__ import annotations


# Numbered migrations: entry i brings the schema from version i to i + 1. Never edit a shipped entry;
# append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE SEQUENCE dataset_seq START 1;
    CREATE TABLE datasets (
        dataset_id INTEGER PRIMARY KEY,
        name VARCHAR NOT NULL,
        format VARCHAR NOT NULL,
        source VARCHAR NOT NULL,
        split VARCHAR,
        active BOOLEAN NOT NULL,
        created_at TIMESTAMP NOT NULL
    );
    CREATE TABLE queries (
        dataset_id INTEGER NOT NULL, query_id VARCHAR NOT NULL, text VARCHAR NOT NULL,
        text_hash VARCHAR NOT NULL
    );
    CREATE TABLE documents (
        dataset_id INTEGER NOT NULL, doc_id VARCHAR NOT NULL, title VARCHAR, text VARCHAR NOT NULL,
        text_hash VARCHAR NOT NULL
    );
    CREATE TABLE positives (
        dataset_id INTEGER NOT NULL, query_id VARCHAR NOT NULL, doc_id VARCHAR NOT NULL,
        grade INTEGER NOT NULL, source VARCHAR NOT NULL
    );
    CREATE TABLE given_negatives (
        dataset_id INTEGER NOT NULL, query_id VARCHAR NOT NULL, doc_id VARCHAR NOT NULL,
        source VARCHAR NOT NULL
    );
    CREATE TABLE models (
        model_fp VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, dim INTEGER NOT NULL,
        created_at TIMESTAMP NOT NULL
    );
    CREATE TABLE embeddings (
        model_fp VARCHAR NOT NULL, prompt VARCHAR NOT NULL, text_hash VARCHAR NOT NULL,
        vector BLOB NOT NULL
    );
    CREATE SEQUENCE run_seq START 1;
    CREATE TABLE runs (
        run_id INTEGER PRIMARY KEY,
        dataset_id INTEGER NOT NULL,
        strategy VARCHAR NOT NULL,
        params VARCHAR NOT NULL,
        model VARCHAR NOT NULL,
        model_fp VARCHAR NOT NULL,
        query_prompt VARCHAR NOT NULL,
        doc_prompt VARCHAR NOT NULL,
        seed INTEGER NOT NULL,
        num_negatives INTEGER NOT NULL,
        pool_depth INTEGER NOT NULL,
        status VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL,
        finished_at TIMESTAMP,
        timings VARCHAR,
        filter_counts VARCHAR,
        n_queries INTEGER,
        short_queries VARCHAR,
        error VARCHAR
    );
    CREATE TABLE candidates (
        run_id INTEGER NOT NULL, query_id VARCHAR NOT NULL, doc_id VARCHAR NOT NULL,
        rank INTEGER, score FLOAT NOT NULL, pos_score FLOAT NOT NULL, lexical_score FLOAT,
        source VARCHAR NOT NULL, eligible BOOLEAN NOT NULL, selected BOOLEAN NOT NULL
    );
    CREATE SEQUENCE decision_seq START 1;
    CREATE TABLE decisions (
        decision_id BIGINT PRIMARY KEY,
        query_hash VARCHAR NOT NULL, doc_hash VARCHAR NOT NULL,
        query_id VARCHAR, doc_id VARCHAR, dataset VARCHAR,
        label VARCHAR NOT NULL CHECK (label IN ('hard_negative', 'false_negative', 'unsure')),
        annotator VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL, note VARCHAR
    );
    CREATE TABLE retractions (
        decision_id BIGINT NOT NULL, annotator VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL
    );
    CREATE VIEW latest_decisions AS
        SELECT * EXCLUDE (rn) FROM (
            SELECT d.*, row_number() OVER (
                PARTITION BY d.query_hash, d.doc_hash ORDER BY d.decision_id DESC) AS rn
            FROM decisions d
            WHERE d.decision_id NOT IN (SELECT decision_id FROM retractions)
        ) WHERE rn = 1;
    """,
    """
    CREATE TABLE suspicion (
        run_id INTEGER NOT NULL, query_id VARCHAR NOT NULL, doc_id VARCHAR NOT NULL,
        suspicion FLOAT NOT NULL, reasons VARCHAR NOT NULL, signals VARCHAR NOT NULL,
        scorer VARCHAR NOT NULL, scored_at TIMESTAMP NOT NULL
    );
    """,
    # The latest decision is the newest by time (ties: by id), so workspaces that import each
    # other's decisions agree on it whichever way they merged.
    """
    CREATE OR REPLACE VIEW latest_decisions AS
        SELECT * EXCLUDE (rn) FROM (
            SELECT d.*, row_number() OVER (
                PARTITION BY d.query_hash, d.doc_hash
                ORDER BY d.created_at DESC, d.decision_id DESC) AS rn
            FROM decisions d
            WHERE d.decision_id NOT IN (SELECT decision_id FROM retractions)
        ) WHERE rn = 1;
    """,
    # Scale (issue 5): how a run searched (index, nprobe, measured recall, a reused pool) as JSON;
    # each candidate's current suspicion beside it, so the review order at 10M candidates needs no
    # join of two 10M-row tables (the suspicion table stays the record, with reasons); and 2-D
    # projections cached per embedding version and settings.
    """
    ALTER TABLE runs ADD COLUMN search VARCHAR;
    ALTER TABLE candidates ADD COLUMN suspicion FLOAT;
    CREATE SEQUENCE projection_seq START 1;
    CREATE TABLE projections (
        projection_id INTEGER PRIMARY KEY, dataset_id INTEGER NOT NULL, model_fp VARCHAR NOT NULL,
        query_prompt VARCHAR NOT NULL, doc_prompt VARCHAR NOT NULL, settings VARCHAR NOT NULL,
        total INTEGER NOT NULL, n_neighbors INTEGER NOT NULL, seconds FLOAT NOT NULL,
        created_at TIMESTAMP NOT NULL
    );
    CREATE TABLE projection_points (
        projection_id INTEGER NOT NULL, id VARCHAR NOT NULL, kind VARCHAR NOT NULL,
        x FLOAT NOT NULL, y FLOAT NOT NULL
    );
    """,
    # Scale (issue 5): hashes of each candidate's query and document ids, so the app's queries over
    # millions of candidates join and group integers instead of decoding strings.
    """
    ALTER TABLE candidates ADD COLUMN qh UBIGINT;
    ALTER TABLE candidates ADD COLUMN dh UBIGINT;
    UPDATE candidates SET qh = hash(query_id), dh = hash(doc_id);
    """,
    # Audits: a seeded uniform sample of the negatives a run's export takes, in the order it is to
    # be reviewed, so the decisions on it estimate the export's false-negative rate. Pairs keep
    # their texts' hashes: decisions are keyed by them.
    """
    CREATE SEQUENCE audit_seq START 1;
    CREATE TABLE audits (
        audit_id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, num_negatives INTEGER NOT NULL,
        seed BIGINT NOT NULL, size INTEGER NOT NULL, exported INTEGER NOT NULL,
        exported_queries INTEGER NOT NULL, created_by VARCHAR, created_at TIMESTAMP NOT NULL
    );
    CREATE TABLE audit_pairs (
        audit_id INTEGER NOT NULL, position INTEGER NOT NULL, query_id VARCHAR NOT NULL,
        doc_id VARCHAR NOT NULL, query_hash VARCHAR NOT NULL, doc_hash VARCHAR NOT NULL
    );
    """,
    # A cross-encoder teacher's score of a (query, document) pair, keyed like the embedding cache
    # by the model's fingerprint and the texts' hashes, so a re-search, a grown dataset or a
    # deeper pool scores only the pairs it has not scored before.
    """
    CREATE TABLE pair_scores (
        model_fp VARCHAR NOT NULL, query_hash VARCHAR NOT NULL, doc_hash VARCHAR NOT NULL,
        score FLOAT NOT NULL
    );
    """,
    # An audit of an export that leaves out queries with many false negatives (RLHN) records
    # the limit, so its report says which export it estimates.
    """
    ALTER TABLE audits ADD COLUMN max_false_negatives INTEGER;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
