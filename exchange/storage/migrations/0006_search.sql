-- Discovery: full-text search, references in both directions, saved queries, and the
-- reading view's tokens and sessions.

-- One row per item, written in the same transaction as the item (ItemStore.append_txn).
-- `doc` is a tsvector of CJK bigrams and Latin words built by exchange.core.search_text
-- (no segmentation extension needed). The audience and filter columns repeat the item's
-- so a search reads this table alone until its final page. Matching uses `doc` (GIN);
-- ranking reads only the small `head`, so ranking never decompresses a long body. `v` is the tokenizer
-- version: rows of an older version (and items indexed before this migration) are
-- (re)built in the background at start.
CREATE TABLE item_search (
    idx               bigint PRIMARY KEY,
    v                 smallint NOT NULL,
    kind              text NOT NULL,
    author            text NOT NULL,
    created_at        timestamptz NOT NULL,
    audience_circles  text[] NOT NULL,
    audience_sites    text[] NOT NULL,
    tags              text[] NOT NULL,
    doc               tsvector NOT NULL,  -- every field: what matches
    head              tsvector NOT NULL   -- title, tags, summary: what ranks (small, inline)
);
-- Keep the heap narrow (a GIN bitmap visits one heap tuple per match): long `doc`
-- vectors move to TOAST early, the small `head` stays inline for ranking.
ALTER TABLE item_search SET (toast_tuple_target = 256);
ALTER TABLE item_search ALTER COLUMN head SET STORAGE MAIN;
CREATE INDEX item_search_doc ON item_search USING gin (doc);
CREATE INDEX item_search_kind ON item_search (kind, idx);
CREATE INDEX item_search_author ON item_search (author, idx);

-- Every ref of every item: outgoing refs are in the item; incoming ones are found here.
CREATE TABLE item_refs (
    dst  text NOT NULL,    -- id of the referenced item (it may not be stored here)
    src  bigint NOT NULL,  -- idx of the referencing item
    rel  text NOT NULL,
    PRIMARY KEY (dst, src, rel)
);

-- Saved queries of sites, each with a durable cursor: the last log index up to which
-- every match has been delivered and acknowledged.
CREATE TABLE subscriptions (
    id          text PRIMARY KEY,
    site        text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    q           text NOT NULL DEFAULT '',
    kind        text,
    tag         text,
    author      text,
    cursor      bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    acked_at    timestamptz
);
CREATE INDEX subscriptions_site ON subscriptions (site, created_at);

-- Reading view: one read token per site (stored hashed; issuing a new one replaces it
-- and ends the site's sessions), exchanged for session cookies (stored hashed).
CREATE TABLE read_tokens (
    site_id     text PRIMARY KEY REFERENCES sites (id) ON DELETE CASCADE,
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE read_sessions (
    token_hash  bytea PRIMARY KEY,
    site_id     text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX read_sessions_site ON read_sessions (site_id);
