-- Image records (imgapi-meta SQLite backend).
--
-- `record` is the authoritative ImageRecord JSON; every other column and the
-- side tables are derived search/sort columns, rewritten in the same
-- transaction as `record` on every write.

CREATE TABLE images (
    uuid         TEXT    PRIMARY KEY NOT NULL,
    revision     INTEGER NOT NULL,
    owner        TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    version      TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    activated    INTEGER NOT NULL,
    disabled     INTEGER NOT NULL,
    public       INTEGER NOT NULL,
    type         TEXT    NOT NULL,
    os           TEXT    NOT NULL,
    origin       TEXT,
    -- published_at in ms since the epoch; NULL when absent or unparsable.
    published_ms INTEGER,
    record       TEXT    NOT NULL
) STRICT;

CREATE INDEX images_owner ON images (owner);
CREATE INDEX images_state ON images (state);
CREATE INDEX images_name ON images (name);
CREATE INDEX images_origin ON images (origin);
CREATE INDEX images_published_ms ON images (published_ms);
-- Matches the ListImages ORDER BY exactly, so SQLite can walk it in order.
CREATE INDEX images_sort ON images (COALESCE(published_ms, 0), uuid);

-- Tag search form (manifest.md §7): one row per tag, value normalised.
CREATE TABLE image_tags (
    uuid  TEXT NOT NULL REFERENCES images (uuid) ON DELETE CASCADE,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (uuid, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX image_tags_key_value ON image_tags (key, value);

CREATE TABLE image_billing_tags (
    uuid TEXT NOT NULL REFERENCES images (uuid) ON DELETE CASCADE,
    tag  TEXT NOT NULL,
    PRIMARY KEY (uuid, tag)
) STRICT, WITHOUT ROWID;
CREATE INDEX image_billing_tags_tag ON image_billing_tags (tag);

CREATE TABLE image_channels (
    uuid    TEXT NOT NULL REFERENCES images (uuid) ON DELETE CASCADE,
    channel TEXT NOT NULL,
    PRIMARY KEY (uuid, channel)
) STRICT, WITHOUT ROWID;
CREATE INDEX image_channels_channel ON image_channels (channel);

CREATE TABLE image_acl (
    uuid    TEXT NOT NULL REFERENCES images (uuid) ON DELETE CASCADE,
    account TEXT NOT NULL,
    PRIMARY KEY (uuid, account)
) STRICT, WITHOUT ROWID;
CREATE INDEX image_acl_account ON image_acl (account);

-- Source of revisions: one global counter, so a revision is never reused,
-- not even after a record is deleted and re-created under the same uuid.
CREATE TABLE revision_counter (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
) STRICT;
INSERT INTO revision_counter (id, value) VALUES (1, 0);
