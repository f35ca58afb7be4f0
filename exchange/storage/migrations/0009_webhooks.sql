-- Outbound webhooks: the node POSTs each new item a site may see to that site's own
-- system. One row per subscriber; `cursor` is the last item index delivered (or found
-- not visible), advanced only after a 2xx answer. Backoff state survives restarts.

CREATE TABLE webhooks (
    id               bigserial PRIMARY KEY,
    site_id          text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    url              text NOT NULL,
    cursor           bigint NOT NULL DEFAULT -1,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_total  bigint NOT NULL DEFAULT 0,
    attempts         int NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_success     timestamptz,
    last_status      int,
    last_error       text,
    last_error_at    timestamptz,
    UNIQUE (site_id, url)
);
