-- The whole schema, version 1. Both backends apply the same files in order; "{id}" becomes
-- the backend's auto-increment primary key. Times are ISO-8601 UTC text with microseconds, so
-- that they sort as text on both backends. Nothing that justifies a call is updated in place.

CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE advertisers (
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    definition TEXT NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (id, version)
);

CREATE TABLE campaigns (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    advertiser TEXT NOT NULL,
    definition TEXT NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (name, version)
);

-- Legal-basis records (COMPLIANCE.md 4): versioned per (number, advertiser, basis); the
-- fingerprint is the SHA-256 of the canonical record, so a re-import changes nothing and an
-- edited row no longer matches its fingerprint.
CREATE TABLE legal_basis (
    id {id},
    number TEXT NOT NULL,
    advertiser TEXT NOT NULL,
    basis TEXT NOT NULL,
    version INTEGER NOT NULL,
    fingerprint TEXT NOT NULL UNIQUE,
    data TEXT NOT NULL,
    imported_at TEXT NOT NULL
);
CREATE INDEX legal_basis_key ON legal_basis (number, advertiser, basis, version);

-- Oppositions: only the keyed hash of the number is kept (CNIL retention guidance).
CREATE TABLE oppositions (
    id {id},
    number_hmac TEXT NOT NULL,
    scope TEXT NOT NULL,
    source TEXT NOT NULL,
    at TEXT NOT NULL,
    attempt_id BIGINT
);
CREATE INDEX oppositions_hmac ON oppositions (number_hmac);

-- One row per decision (COMPLIANCE.md 4, attempts); the id is the decision's audit sequence.
CREATE TABLE attempts (
    id BIGINT PRIMARY KEY,
    campaign TEXT NOT NULL,
    advertiser TEXT NOT NULL,
    number TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    verdict TEXT NOT NULL,
    rule TEXT,
    reason TEXT NOT NULL,
    until_at TEXT,
    zone TEXT NOT NULL,
    local_time TEXT NOT NULL,
    rules TEXT NOT NULL,
    basis_record_id BIGINT,
    basis_version INTEGER,
    outcome TEXT NOT NULL
);
CREATE INDEX attempts_frequency ON attempts (advertiser, number, decided_at) WHERE verdict = 'allow';
CREATE INDEX attempts_number ON attempts (number);

-- The hash chain: every decision, outcome and opposition, each with the hash of the previous.
CREATE TABLE audit (
    seq BIGINT PRIMARY KEY,
    kind TEXT NOT NULL,
    ref BIGINT NOT NULL,
    at TEXT NOT NULL,
    payload TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);

CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
