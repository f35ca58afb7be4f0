-- Adapter health: the latest report of each site's adapter runner (POST /v1/adapters/health).
-- One row per site, replaced by each report; monitors read it through GET /v1/adapters/health.

CREATE TABLE adapter_health (
    site         text PRIMARY KEY REFERENCES sites (id) ON DELETE CASCADE,
    report       jsonb NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
