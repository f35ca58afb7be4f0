-- A blob is readable through an item only when the item's author uploaded the blob
-- (proved it holds the bytes): naming another site's hash in an item of one's own no
-- longer reads that site's file. Every site that uploaded the bytes is remembered.
CREATE TABLE blob_uploaders (
    sha256  text NOT NULL REFERENCES blobs (sha256) ON DELETE CASCADE,
    site    text NOT NULL,
    PRIMARY KEY (sha256, site)
);
INSERT INTO blob_uploaders (sha256, site) SELECT sha256, uploader FROM blobs;
