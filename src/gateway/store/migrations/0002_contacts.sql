-- Version 2: what the dialer works through (issue 5). One row per number of a campaign, with
-- where it stands; the run state of each campaign. Unlike the records that justify a call these
-- rows are working state and are updated in place: the attempts table keeps the history.

-- state: pending (due at next_at), calling (claimed by a dialer), done (finished, or denied),
-- stopped (a refusal: 603, 607, 404, 484, 604, an opposition). attempts counts the allowed,
-- reserved attempts of this campaign for the number.
CREATE TABLE contacts (
    campaign TEXT NOT NULL,
    number TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at TEXT NOT NULL,
    last_cause INTEGER,
    last_outcome TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    attempt_id BIGINT,
    claimed_by TEXT,
    added_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (campaign, number)
);
-- The due index is in the order claims take (next_at, number): a claim reads only what it takes.
CREATE INDEX contacts_due ON contacts (campaign, state, next_at, number);

-- active, paused or done; a campaign never started has no row.
CREATE TABLE campaign_runs (
    campaign TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    changed_at TEXT NOT NULL
);
