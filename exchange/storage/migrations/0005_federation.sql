-- Federation: the installed roster, per-peer delivery and catch-up cursors, site records.

CREATE TABLE roster (
    id            int PRIMARY KEY CHECK (id = 1),
    version       bigint NOT NULL,
    signed        jsonb NOT NULL,
    installed_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE peers (
    node_id          text PRIMARY KEY,
    base_url         text NOT NULL,
    push_cursor      bigint NOT NULL DEFAULT -1,   -- last local index delivered (or skipped)
    pull_cursor      bigint NOT NULL DEFAULT -1,   -- last index of the peer's log we have
    pushed_total     bigint NOT NULL DEFAULT 0,
    pulled_total     bigint NOT NULL DEFAULT 0,
    refused_total    bigint NOT NULL DEFAULT 0,
    last_success     timestamptz,
    last_error       text,
    last_error_at    timestamptz,
    attempts         int NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE site_records (
    site_id        text PRIMARY KEY,
    version        bigint NOT NULL,
    signed         jsonb NOT NULL,
    received_from  text NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX items_origin ON items (origin, idx);
