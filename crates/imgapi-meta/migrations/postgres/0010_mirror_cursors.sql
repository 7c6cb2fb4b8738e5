-- Where `imgapi mirror --follow` is in an upstream's change feed
-- (docs/mirroring.md "Following an upstream"): one row per upstream
-- (its URL with credentials redacted) and filter set, so that a restarted
-- mirror resumes from the feed instead of listing the whole upstream.

CREATE TABLE mirror_cursors (
    upstream   TEXT COLLATE "C" NOT NULL,
    filters    TEXT COLLATE "C" NOT NULL,
    cursor     BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (upstream, filters)
);
