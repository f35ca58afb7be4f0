-- Witnessing: the latest checkpoint of each peer's log we verified (compare-and-set),
-- cosignatures peers made of our checkpoints, and evidence of inconsistencies.

CREATE TABLE witnessed (
    node_id   text PRIMARY KEY,
    size      bigint NOT NULL,
    root      bytea NOT NULL,
    note      text NOT NULL,
    seen_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cosignatures (
    size       bigint NOT NULL,
    witness    text NOT NULL,
    line       text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (size, witness)
);

CREATE TABLE witness_evidence (
    id         bigserial PRIMARY KEY,
    node_id    text NOT NULL,
    reason     text NOT NULL,
    old_note   text NOT NULL,
    new_note   text NOT NULL,
    proof      jsonb NOT NULL DEFAULT '[]',
    found_at   timestamptz NOT NULL DEFAULT now()
);
