-- The Merkle log: hashes of complete subtrees, the integrated state, signed checkpoints.

-- (level, idx) covers leaves [idx * 2^level, (idx + 1) * 2^level); level 0 = leaf hashes.
CREATE TABLE log_nodes (
    level  smallint NOT NULL,
    idx    bigint NOT NULL,
    hash   bytea NOT NULL,
    PRIMARY KEY (level, idx)
);

CREATE TABLE log_state (
    id    int PRIMARY KEY CHECK (id = 1),
    size  bigint NOT NULL,
    root  bytea NOT NULL
);
INSERT INTO log_state (id, size, root)
VALUES (1, 0, '\xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');

CREATE TABLE log_checkpoints (
    size       bigint PRIMARY KEY,
    root       bytea NOT NULL,
    note       text NOT NULL,
    signed_at  timestamptz NOT NULL DEFAULT now()
);
