-- Recycle bin (docs/lifecycle.md): a deleted image's whole record, kept
-- until it is restored, purged, or expires. Its uuid stays taken: an
-- insert into `images` checks this table in the same transaction. The
-- image's blobs stay in the blob store until the entry is purged.
-- Times are ms since the epoch; `size` is the bytes of its files.

CREATE TABLE recycle_bin (
    uuid       TEXT    PRIMARY KEY NOT NULL,
    owner      TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    version    TEXT    NOT NULL,
    size       INTEGER NOT NULL,
    record     TEXT    NOT NULL,
    deleted_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    deleted_by TEXT,
    -- The image's deprecation time (image_lifecycle), restored with it.
    deprecated_ms INTEGER
) STRICT;

CREATE INDEX recycle_bin_owner ON recycle_bin (owner, deleted_ms, uuid);
CREATE INDEX recycle_bin_expires ON recycle_bin (expires_ms);

-- When a record was first inserted (abandoned uploads are judged by it);
-- rows older than this migration get the migration's time.
ALTER TABLE images ADD COLUMN created_ms INTEGER;
UPDATE images SET created_ms = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER);
CREATE INDEX images_unactivated_created ON images (created_ms) WHERE activated = 0;
