-- Attachments travel with replicated items: the node fetches each attachment of an item a
-- peer delivered from the author's home node, so readers here can open it. `blob_fetches`
-- holds the attachments still to fetch (with their signed size and media type) and when
-- to try again; `blob_fetch_state.scanned` is the log index up to which stored items have
-- been looked at (from 0: attachments of items replicated before this migration are
-- fetched too).
CREATE TABLE blob_fetches (
    sha256      text NOT NULL,
    author      text NOT NULL,     -- recorded as the uploader once the bytes arrived
    size        bigint NOT NULL,   -- as the author's signed attachment entry declares it
    media_type  text NOT NULL,
    attempts    integer NOT NULL DEFAULT 0,
    next_at     timestamptz NOT NULL DEFAULT now(),
    last_error  text,
    PRIMARY KEY (sha256, author)
);
CREATE INDEX blob_fetches_due ON blob_fetches (next_at);

CREATE TABLE blob_fetch_state (
    id       integer PRIMARY KEY CHECK (id = 1),
    scanned  bigint NOT NULL
);
INSERT INTO blob_fetch_state (id, scanned) VALUES (1, 0);
