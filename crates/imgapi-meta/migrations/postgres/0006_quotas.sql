-- Per-owner quotas (docs/lifecycle.md "Quotas"): operator overrides of the
-- configured limits (NULL = the configured value, 0 = unlimited) and the
-- reservations of creates and uploads in progress (see imgapi-meta
-- quotas.rs; checks and inserts are serialized per owner with
-- pg_advisory_xact_lock). A reservation may claim (name, version) for
-- write-once versions. Times are ms since the epoch.

CREATE TABLE quota_overrides (
    owner  TEXT COLLATE "C" PRIMARY KEY,
    images BIGINT,
    bytes  BIGINT
);

CREATE TABLE quota_reservations (
    id         TEXT COLLATE "C" PRIMARY KEY,
    owner      TEXT COLLATE "C" NOT NULL,
    image_uuid TEXT COLLATE "C" NOT NULL,
    images     BIGINT NOT NULL,
    bytes      BIGINT NOT NULL,
    name       TEXT,
    version    TEXT,
    expires_ms BIGINT NOT NULL
);

CREATE INDEX quota_reservations_owner ON quota_reservations (owner, expires_ms);
