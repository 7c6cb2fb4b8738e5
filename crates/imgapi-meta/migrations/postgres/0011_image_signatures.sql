-- Signatures of images (docs/signing.md): one per image and signing key,
-- each an OpenSSH SSHSIG over the image's statement, verified when added.
-- No foreign key to images: a recycled image keeps its signatures for its
-- restore. The image writes that remove an image for good (delete, purge
-- from the recycle bin, a uuid change) remove its signatures in the same
-- transaction.

CREATE TABLE image_signatures (
    uuid        TEXT COLLATE "C" NOT NULL,
    key_id      TEXT COLLATE "C" NOT NULL,
    fingerprint TEXT NOT NULL,
    algorithm   TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    signature   TEXT NOT NULL,
    added_ms    BIGINT NOT NULL,
    added_by    TEXT NOT NULL,
    PRIMARY KEY (uuid, key_id)
);
