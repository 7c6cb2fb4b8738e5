-- The change log's counter follows its inserts (docs/events.md): an event
-- row is inserted with seq = change_log.last_seq + 1 and this trigger moves
-- last_seq to it, in the same statement. One statement per event instead of
-- two: on SQLite every statement is a hand-off to the database thread, and
-- the single writer pays it for every write. (PostgreSQL does the same with
-- one data-modifying CTE; there is no PostgreSQL 0011.)

CREATE TRIGGER image_events_advance_counter AFTER INSERT ON image_events
BEGIN
    UPDATE change_log SET last_seq = NEW.seq WHERE id = 1 AND last_seq < NEW.seq;
END;
