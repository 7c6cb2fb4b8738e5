-- Background jobs (AdminImportRemoteImage / ImportFromDatacenter run
-- in-process as jobs; ListImageJobs shows them).
--
-- `params` and `chain_results` are JSON text (kept byte for byte, like
-- `images.record`). Timestamps are ISO 8601 text as shown on the wire. A
-- job is run by the instance holding its lease (`lease_owner` until
-- `lease_expires_ms`, ms since the epoch); an unfinished job whose lease is
-- absent or expired may be claimed by any instance (a conditional UPDATE:
-- of two instances claiming at once exactly one matches). No foreign key
-- to `images`: a failed import deletes its image but keeps its job.

CREATE TABLE jobs (
    uuid             TEXT COLLATE "C" PRIMARY KEY,
    image_uuid       TEXT COLLATE "C" NOT NULL,
    name             TEXT    NOT NULL,
    execution        TEXT    NOT NULL,
    params           TEXT    NOT NULL,
    chain_results    TEXT    NOT NULL,
    created_at       TEXT COLLATE "C" NOT NULL,
    started_at       TEXT,
    finished_at      TEXT,
    lease_owner      TEXT,
    lease_expires_ms BIGINT,
    attempts         INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX jobs_image ON jobs (image_uuid, created_at, uuid);
CREATE INDEX jobs_unfinished ON jobs (created_at, uuid)
    WHERE execution IN ('queued', 'running');
