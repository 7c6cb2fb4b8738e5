-- Retention rules added through the operator API (docs/lifecycle.md
-- "Retention rules"); rules of the configuration file are not stored.
-- `owner` NULL = every owner; `name` a name or `*`/`?` pattern; at least
-- one of `keep_versions` / `keep_days` (checked by the server).

CREATE TABLE retention_rules (
    id            TEXT COLLATE "C" PRIMARY KEY,
    owner         TEXT COLLATE "C",
    name          TEXT    NOT NULL,
    keep_versions BIGINT,
    keep_days     BIGINT,
    created_at    TEXT    NOT NULL
);
