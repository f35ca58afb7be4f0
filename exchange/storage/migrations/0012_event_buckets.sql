-- Security and refusal events are counted per minute, source, site and code (one row
-- with a count) instead of one row per request: a flood of junk requests adds a row
-- per source and minute, and cannot push a site's own events out of the monitors' view.
ALTER TABLE activity_events
    ADD COLUMN source text NOT NULL DEFAULT '',
    ADD COLUMN bucket timestamptz,
    ADD COLUMN count  integer NOT NULL DEFAULT 1;
CREATE UNIQUE INDEX activity_events_bucket
    ON activity_events (bucket, kind, site, code, source) WHERE bucket IS NOT NULL;
