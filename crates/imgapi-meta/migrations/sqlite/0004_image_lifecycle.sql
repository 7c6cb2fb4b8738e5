-- Lifecycle flags of an image (docs/lifecycle.md: deprecation, protection).
--
-- Kept beside the image record, never in it: the manifest clients see stays
-- exactly what it was. One row per image that ever had a flag set; no row =
-- not deprecated, not protected. `deprecated_ms` is the deprecation time in
-- ms since the epoch (NULL = not deprecated; a time in the future = not yet).
-- `updated_by` names who last changed the flags (an account uuid, or
-- `operator`). The row goes with its image (ON DELETE CASCADE); an operator
-- uuid change carries it to the new uuid.

CREATE TABLE image_lifecycle (
    uuid          TEXT    PRIMARY KEY NOT NULL REFERENCES images (uuid) ON DELETE CASCADE,
    deprecated_ms INTEGER,
    protected     INTEGER NOT NULL,
    updated_ms    INTEGER NOT NULL,
    updated_by    TEXT    NOT NULL
) STRICT;

-- ListImages' "not deprecated" condition and the next deprecation instant.
CREATE INDEX image_lifecycle_deprecated_ms ON image_lifecycle (deprecated_ms);
