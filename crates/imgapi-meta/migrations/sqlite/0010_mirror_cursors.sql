-- Where `imgapi mirror --follow` is in an upstream's change feed
-- (docs/mirroring.md "Following an upstream"): one row per upstream
-- (its URL with credentials redacted) and filter set, so that a restarted
-- mirror resumes from the feed instead of listing the whole upstream.

CREATE TABLE mirror_cursors (
    upstream   TEXT    NOT NULL,
    filters    TEXT    NOT NULL,
    cursor     INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (upstream, filters)
) STRICT;
