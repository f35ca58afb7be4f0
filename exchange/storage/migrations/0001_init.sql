-- Congress Exchange: initial schema.
-- Sites and their keys, items with a gap-free log index, blobs in chunks,
-- request nonces (replay protection), monitors, node state.

CREATE TABLE sites (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    home_node   text NOT NULL,
    circles     text[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE site_keys (
    key_id      text PRIMARY KEY,
    site_id     text NOT NULL REFERENCES sites (id),
    alg         text NOT NULL,
    public_key  bytea NOT NULL,
    valid_from  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX site_keys_site ON site_keys (site_id);

-- One row: the next free log index. Taken FOR UPDATE by every ingest transaction,
-- so indexes are gap-free and ordered by commit, even with several workers.
CREATE TABLE log_head (
    id    int PRIMARY KEY CHECK (id = 1),
    size  bigint NOT NULL
);
INSERT INTO log_head (id, size) VALUES (1, 0);

CREATE TABLE items (
    idx               bigint PRIMARY KEY,
    id                text NOT NULL UNIQUE,
    kind              text NOT NULL,
    author            text NOT NULL,
    created_at        timestamptz NOT NULL,
    received_at       timestamptz NOT NULL,
    audience_circles  text[] NOT NULL,
    audience_sites    text[] NOT NULL,
    tags              text[] NOT NULL,
    title             text NOT NULL,
    key_id            text NOT NULL,
    alg               text NOT NULL,
    sig               bytea NOT NULL,
    canonical         bytea NOT NULL,
    attachments       text[] NOT NULL DEFAULT '{}',
    origin            text NOT NULL
);
CREATE INDEX items_attachments ON items USING gin (attachments);
CREATE INDEX items_author ON items (author, idx);
CREATE INDEX items_kind ON items (kind, idx);
CREATE INDEX items_created ON items (created_at);
CREATE INDEX items_tags ON items USING gin (tags);

CREATE TABLE blobs (
    sha256      text PRIMARY KEY,
    size        bigint NOT NULL,
    media_type  text NOT NULL,
    uploader    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE blob_chunks (
    sha256  text NOT NULL REFERENCES blobs (sha256) ON DELETE CASCADE,
    seq     int NOT NULL,
    data    bytea NOT NULL,
    PRIMARY KEY (sha256, seq)
);

CREATE TABLE request_nonces (
    key_id      text NOT NULL,
    nonce       text NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (key_id, nonce)
);
CREATE INDEX request_nonces_expiry ON request_nonces (expires_at);

CREATE TABLE monitors (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    circles     text[] NOT NULL DEFAULT '{}',
    sites       text[] NOT NULL DEFAULT '{}',
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE node_state (
    key    text PRIMARY KEY,
    value  jsonb NOT NULL
);
