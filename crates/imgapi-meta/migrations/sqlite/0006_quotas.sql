-- Per-owner quotas (docs/lifecycle.md "Quotas"): operator overrides of the
-- configured limits (NULL = the configured value, 0 = unlimited) and the
-- reservations of creates and uploads in progress (see imgapi-meta
-- quotas.rs). A reservation may claim (name, version) for write-once
-- versions. Times are ms since the epoch.

CREATE TABLE quota_overrides (
    owner  TEXT PRIMARY KEY NOT NULL,
    images INTEGER,
    bytes  INTEGER
) STRICT;

CREATE TABLE quota_reservations (
    id         TEXT    PRIMARY KEY NOT NULL,
    owner      TEXT    NOT NULL,
    image_uuid TEXT    NOT NULL,
    images     INTEGER NOT NULL,
    bytes      INTEGER NOT NULL,
    name       TEXT,
    version    TEXT,
    expires_ms INTEGER NOT NULL
) STRICT;

CREATE INDEX quota_reservations_owner ON quota_reservations (owner, expires_ms);
-- Write-once look-ups of an (owner, name, version) triple.
CREATE INDEX images_owner_name_version ON images (owner, name, version);
