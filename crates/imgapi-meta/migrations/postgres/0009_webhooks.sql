-- Webhook endpoints (docs/webhooks.md): where the change log (0008) is
-- delivered, one POST per event, in sequence order per endpoint.
-- `name` is unique: endpoints of the configuration file are upserted by
-- name at start-up, so their cursor survives restarts. `events` is a JSON
-- array of event types (`image.created`, …), NULL = every type.
-- `cursor` is the last seq delivered or skipped; only the holder of the
-- lease (`lease_holder` until `lease_expires_ms`) advances it, so one
-- instance at a time delivers an endpoint. `failures` counts consecutive
-- failed attempts; the next one is not before `next_attempt_ms`; after
-- `[webhooks] max_failures` the endpoint is `dead` until an operator
-- resumes it.

CREATE TABLE webhooks (
    id                TEXT COLLATE "C" PRIMARY KEY,
    name              TEXT COLLATE "C" NOT NULL UNIQUE,
    url               TEXT    NOT NULL,
    secret            TEXT    NOT NULL,
    events            TEXT,
    source            TEXT    NOT NULL CHECK (source IN ('api', 'config')),
    cursor            BIGINT  NOT NULL,
    failures          BIGINT  NOT NULL DEFAULT 0,
    next_attempt_ms   BIGINT  NOT NULL DEFAULT 0,
    last_error        TEXT,
    last_status       BIGINT,
    dead              BOOLEAN NOT NULL DEFAULT FALSE,
    dead_since_ms     BIGINT,
    lease_holder      TEXT,
    lease_expires_ms  BIGINT,
    created_ms        BIGINT  NOT NULL,
    delivered         BIGINT  NOT NULL DEFAULT 0,
    last_delivered_ms BIGINT
);
