-- Recycle bin (docs/lifecycle.md): a deleted image's whole record, kept
-- until it is restored, purged, or expires. Its uuid stays taken: an
-- insert into `images` checks this table in the same transaction. The
-- image's blobs stay in the blob store until the entry is purged.
-- Times are ms since the epoch; `size` is the bytes of its files.

CREATE TABLE recycle_bin (
    uuid       TEXT COLLATE "C" PRIMARY KEY,
    owner      TEXT COLLATE "C" NOT NULL,
    name       TEXT    NOT NULL,
    version    TEXT    NOT NULL,
    size       BIGINT  NOT NULL,
    record     TEXT    NOT NULL,
    deleted_ms BIGINT  NOT NULL,
    expires_ms BIGINT  NOT NULL,
    deleted_by TEXT,
    -- The image's deprecation time (image_lifecycle), restored with it.
    deprecated_ms BIGINT
);

CREATE INDEX recycle_bin_owner ON recycle_bin (owner, deleted_ms, uuid);
CREATE INDEX recycle_bin_expires ON recycle_bin (expires_ms);

-- When a record was first inserted (abandoned uploads are judged by it);
-- rows older than this migration get the migration's time.
ALTER TABLE images ADD COLUMN created_ms BIGINT;
UPDATE images SET created_ms = (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT;
CREATE INDEX images_unactivated_created ON images (created_ms) WHERE NOT activated;
