-- WADO-RS /metadata of a study or series in one row read (package index):
-- each series' instance metadata, joined with commas in retrieval order,
-- built lazily on the first request and kept while series.metadata_version
-- (bumped by every instance added or removed) is unchanged. Stored
-- with lz4 (decompresses faster than pglz; far fewer TOAST chunks to read).
ALTER TABLE series ADD COLUMN metadata_version bigint NOT NULL DEFAULT 0;
CREATE TABLE series_metadata (
    series_pk  bigint PRIMARY KEY REFERENCES series (pk) ON DELETE CASCADE,
    version    bigint NOT NULL,
    instances  integer NOT NULL,
    built_at   timestamptz NOT NULL DEFAULT now(),
    doc        bytea NOT NULL
);
ALTER TABLE series_metadata ALTER COLUMN doc SET COMPRESSION lz4;
