-- Activity for monitors: daily counters, events (refusals, security), dashboard sessions.

CREATE TABLE activity_daily (
    day     date NOT NULL,
    site    text NOT NULL,
    metric  text NOT NULL,          -- pushed | pulled | refused | delivered
    n       bigint NOT NULL,
    PRIMARY KEY (day, site, metric)
);

CREATE TABLE activity_events (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    kind    text NOT NULL,          -- refused | security
    site    text NOT NULL DEFAULT '',
    code    text NOT NULL,
    message text NOT NULL,
    detail  jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX activity_events_at ON activity_events (at DESC);
CREATE INDEX activity_events_site ON activity_events (site, at DESC);

CREATE TABLE monitor_sessions (
    token_hash  bytea PRIMARY KEY,
    monitor_id  text NOT NULL REFERENCES monitors (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
