-- Background jobs (AdminImportRemoteImage / ImportFromDatacenter run
-- in-process as jobs; ListImageJobs shows them).
--
-- `params` and `chain_results` are JSON text. Timestamps are ISO 8601 text
-- as shown on the wire. A job is run by the instance holding its lease
-- (`lease_owner` until `lease_expires_ms`, ms since the epoch); an
-- unfinished job whose lease is absent or expired may be claimed by any
-- instance. No foreign key to `images`: a failed import deletes its image
-- but keeps its job.

CREATE TABLE jobs (
    uuid             TEXT    PRIMARY KEY NOT NULL,
    image_uuid       TEXT    NOT NULL,
    name             TEXT    NOT NULL,
    execution        TEXT    NOT NULL,
    params           TEXT    NOT NULL,
    chain_results    TEXT    NOT NULL,
    created_at       TEXT    NOT NULL,
    started_at       TEXT,
    finished_at      TEXT,
    lease_owner      TEXT,
    lease_expires_ms INTEGER,
    attempts         INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX jobs_image ON jobs (image_uuid, created_at, uuid);
CREATE INDEX jobs_unfinished ON jobs (created_at, uuid)
    WHERE execution IN ('queued', 'running');
