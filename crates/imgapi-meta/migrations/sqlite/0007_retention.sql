-- Retention rules added through the operator API (docs/lifecycle.md
-- "Retention rules"); rules of the configuration file are not stored.
-- `owner` NULL = every owner; `name` a name or `*`/`?` pattern; at least
-- one of `keep_versions` / `keep_days` (checked by the server).

CREATE TABLE retention_rules (
    id            TEXT    PRIMARY KEY NOT NULL,
    owner         TEXT,
    name          TEXT    NOT NULL,
    keep_versions INTEGER,
    keep_days     INTEGER,
    created_at    TEXT    NOT NULL
) STRICT;
