-- Resumable upload sessions (docs/uploads.md), shared by every instance.
--
-- `committed` is the number of bytes received and durably stored (the
-- API's `offset`); `size` the total once known. `params` is JSON text
-- (compression, sha1, dataset_guid), `parts` a JSON array of S3 part ids,
-- `digests` the saved running SHA-1/MD5/SHA-256 of the committed bytes.
-- Times are ms since the epoch. A chunk or a finish is written by the
-- request holding the lease (`lease_owner` until `lease_expires_ms`; a
-- conditional UPDATE: of two requests claiming at once exactly one
-- matches). No foreign key to `images`: deleting an image leaves its
-- sessions to expire (their chunks then answer 404).

CREATE TABLE upload_sessions (
    id               TEXT COLLATE "C" PRIMARY KEY,
    image_uuid       TEXT COLLATE "C" NOT NULL,
    params           TEXT    NOT NULL,
    stor             TEXT    NOT NULL,
    blob_key         TEXT    NOT NULL,
    handle           TEXT    NOT NULL,
    committed        BIGINT  NOT NULL,
    size             BIGINT,
    parts            TEXT    NOT NULL,
    digests          TEXT    NOT NULL,
    created_ms       BIGINT  NOT NULL,
    expires_ms       BIGINT  NOT NULL,
    lease_owner      TEXT,
    lease_expires_ms BIGINT
);

CREATE INDEX upload_sessions_expires ON upload_sessions (expires_ms);
