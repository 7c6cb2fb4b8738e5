-- Image records (imgapi-meta PostgreSQL backend).
--
-- `record` is the authoritative ImageRecord JSON, kept as text so that it
-- comes back byte for byte (jsonb would reorder keys). Every other column
-- and the side tables are derived search/sort columns, rewritten in the
-- same transaction as `record` on every write.
--
-- uuid-valued columns are text in the "C" collation: ordering is bytewise,
-- exactly the order of Rust's Uuid (and of the SQLite backend), and a
-- filter value that is not a uuid simply matches nothing.
--
-- Values whose length the manifest rules bound loosely or not at all (name:
-- 1024 characters; tag keys: up to the 100 KiB tags limit; channel names)
-- are indexed by hash or by md5(), never raw in a btree, whose entries
-- cannot exceed ~2.7 kB.

CREATE SEQUENCE image_revision AS BIGINT;

CREATE TABLE images (
    uuid         TEXT COLLATE "C" PRIMARY KEY,
    -- nextval('image_revision') at every write: unique forever.
    revision     BIGINT  NOT NULL,
    owner        TEXT COLLATE "C" NOT NULL,
    name         TEXT    NOT NULL,
    version      TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    activated    BOOLEAN NOT NULL,
    disabled     BOOLEAN NOT NULL,
    public       BOOLEAN NOT NULL,
    type         TEXT    NOT NULL,
    os           TEXT    NOT NULL,
    origin       TEXT COLLATE "C",
    -- published_at in ms since the epoch; NULL when absent or unparsable.
    published_ms BIGINT,
    record       TEXT    NOT NULL
);

CREATE INDEX images_owner ON images (owner);
CREATE INDEX images_state ON images (state);
CREATE INDEX images_name ON images USING hash (name);
CREATE INDEX images_origin ON images (origin);
CREATE INDEX images_published_ms ON images (published_ms);
-- Matches the ListImages ORDER BY exactly (both directions).
CREATE INDEX images_sort ON images ((COALESCE(published_ms, 0)), uuid);

-- Tag search form (manifest.md §7): one row per tag, value normalised
-- (at most 100 characters, see imgapi_domain::tags). Keys are unique per
-- image (they come from a JSON object).
CREATE TABLE image_tags (
    uuid  TEXT COLLATE "C" NOT NULL REFERENCES images (uuid) ON DELETE CASCADE,
    key   TEXT NOT NULL,
    value TEXT NOT NULL
);
CREATE INDEX image_tags_uuid ON image_tags (uuid);
CREATE INDEX image_tags_key_value ON image_tags ((md5(key)), value);

-- Billing tags are at most 128 characters (manifest rules).
CREATE TABLE image_billing_tags (
    uuid TEXT COLLATE "C" NOT NULL REFERENCES images (uuid) ON DELETE CASCADE,
    tag  TEXT NOT NULL,
    PRIMARY KEY (uuid, tag)
);
CREATE INDEX image_billing_tags_tag ON image_billing_tags (tag);

-- Channel names are not length-bounded by the manifest rules: md5 index.
-- (Rows are unique per image: writes insert DISTINCT values after deleting
-- the old rows, serialised by the lock on the images row.)
CREATE TABLE image_channels (
    uuid    TEXT COLLATE "C" NOT NULL REFERENCES images (uuid) ON DELETE CASCADE,
    channel TEXT NOT NULL
);
CREATE INDEX image_channels_uuid ON image_channels (uuid);
CREATE INDEX image_channels_channel ON image_channels ((md5(channel)));

CREATE TABLE image_acl (
    uuid    TEXT COLLATE "C" NOT NULL REFERENCES images (uuid) ON DELETE CASCADE,
    account TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (uuid, account)
);
CREATE INDEX image_acl_account ON image_acl (account);

-- The write generation (MetaStore::generation) is the SUM of these rows.
-- Every write transaction adds 1 to one stripe (chosen by the image uuid)
-- just before it commits, so the sum as seen by any snapshot is the number
-- of write transactions committed in it: it moves exactly when committed
-- data does, never ahead of it. Striping keeps unrelated writers from
-- queueing on one row.
CREATE TABLE write_generation (
    stripe SMALLINT PRIMARY KEY,
    value  BIGINT NOT NULL
);
INSERT INTO write_generation (stripe, value) SELECT s, 0 FROM generate_series(0, 15) AS s;
