-- The golden store's schema: one text for SQLite and PostgreSQL. JSON is TEXT, times are
-- RFC 3339 TEXT in UTC with nanoseconds (fixed width, so text order is time order),
-- integers BIGINT, probabilities DOUBLE PRECISION. Ids come from golden_counter, not from
-- an autoincrement, so both databases run the same statements: `golden` numbers golden ids,
-- `row_id` the rows of history, outbox, reviews and the key sequence (in reserved blocks).

CREATE TABLE IF NOT EXISTS golden_counter (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO golden_counter (name, value) VALUES
    ('golden', 0), ('row_id', 0)
    ON CONFLICT (name) DO NOTHING;

-- One row per golden id ever issued; a merged id stays, pointing at its survivor.
CREATE TABLE IF NOT EXISTS golden (
    golden_id   TEXT PRIMARY KEY,
    version     BIGINT NOT NULL,
    state       TEXT NOT NULL,
    merged_into TEXT,
    record      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- Cross-references: a source record, its latest event and match record, and the live golden
-- id it belongs to. origin_id is the golden id it first belonged to (or was unmerged into):
-- a golden record's absorbed ids are its members' origins other than itself.
CREATE TABLE IF NOT EXISTS golden_xref (
    system       TEXT NOT NULL,
    source_id    TEXT NOT NULL,
    source       TEXT NOT NULL,
    golden_id    TEXT NOT NULL,
    origin_id    TEXT NOT NULL,
    version      BIGINT NOT NULL,
    event_id     TEXT NOT NULL,
    event_time   TEXT NOT NULL,
    event        TEXT NOT NULL,
    match_record TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (system, source_id)
);
CREATE INDEX IF NOT EXISTS golden_xref_by_golden ON golden_xref (golden_id);

-- Blocking and id keys (hashed: no personal data) of each source record; seq orders them by
-- indexing time, so a key's most recent records come first.
CREATE TABLE IF NOT EXISTS golden_key (
    key       TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    system    TEXT NOT NULL,
    source_id TEXT NOT NULL,
    PRIMARY KEY (key, seq)
);
CREATE INDEX IF NOT EXISTS golden_key_by_record ON golden_key (system, source_id);

-- Field history with provenance.
CREATE TABLE IF NOT EXISTS golden_history (
    id          BIGINT PRIMARY KEY,
    golden_id   TEXT NOT NULL,
    field       TEXT NOT NULL,
    old_value   TEXT,
    new_value   TEXT,
    system      TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    event_time  TEXT NOT NULL,
    version     BIGINT NOT NULL,
    reason      TEXT NOT NULL,
    actor       TEXT,
    recorded_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS golden_history_by_golden ON golden_history (golden_id, field, id);

-- The data stewards' queue.
CREATE TABLE IF NOT EXISTS golden_review (
    id          BIGINT PRIMARY KEY,
    a_system    TEXT NOT NULL,
    a_source_id TEXT NOT NULL,
    b_system    TEXT NOT NULL,
    b_source_id TEXT NOT NULL,
    probability DOUBLE PRECISION NOT NULL,
    status      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    decided_by  TEXT,
    decided_at  TEXT
);
CREATE INDEX IF NOT EXISTS golden_review_by_status ON golden_review (status, id);
CREATE INDEX IF NOT EXISTS golden_review_by_a ON golden_review (a_system, a_source_id);

-- Pairs of source records matching must never join: stored in both directions.
CREATE TABLE IF NOT EXISTS golden_apart (
    system          TEXT NOT NULL,
    source_id       TEXT NOT NULL,
    other_system    TEXT NOT NULL,
    other_source_id TEXT NOT NULL,
    reason          TEXT NOT NULL,
    created_by      TEXT,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (system, source_id, other_system, other_source_id)
);

-- Golden ids to publish, at most one pending row per golden id, written in the transaction
-- that changed the golden record.
CREATE TABLE IF NOT EXISTS golden_outbox (
    outbox_id  BIGINT PRIMARY KEY,
    golden_id  TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS golden_outbox_by_golden ON golden_outbox (golden_id);
