-- One owner's images in ListImages order (issue 20): a query filtered by
-- owner walks this index in the answer's order and stops at the limit,
-- instead of sorting every image of the owner (or walking the whole sort
-- index for the owner's few). `state` and `name` ride along so the most
-- common further filters are checked on the index entry, before the row
-- is read.
CREATE INDEX images_owner_sort ON images (owner, COALESCE(published_ms, 0), uuid, state, name);
