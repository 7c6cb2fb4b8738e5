-- The change log (docs/events.md): one row per committed image write,
-- inserted in the write's own transaction. `seq` comes from
-- change_log.last_seq, bumped by the last statement before COMMIT: the row
-- lock orders commits, so numbers are gapless in commit order and a reader
-- at `since = N` never misses an event that commits later with a smaller
-- number. `record` is the image record after the write (before it, for a
-- removal): what the event's visibility is judged on.

CREATE TABLE image_events (
    seq     BIGINT PRIMARY KEY,
    time_ms BIGINT NOT NULL,
    kind    TEXT   NOT NULL,
    uuid    TEXT COLLATE "C" NOT NULL,
    fields  TEXT   NOT NULL,
    record  TEXT   NOT NULL
);

CREATE TABLE change_log (
    id             SMALLINT PRIMARY KEY CHECK (id = 1),
    last_seq       BIGINT NOT NULL,
    purged_through BIGINT NOT NULL
);

INSERT INTO change_log (id, last_seq, purged_through) VALUES (1, 0, 0);
