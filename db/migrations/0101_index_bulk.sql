-- Bulk data locations of an instance (package index): element path as in
-- BulkDataURIs ("7FE00010", "00540016/0/00181072") -> [offset, length] of
-- the value in the plaintext Part-10 object, so /bulkdata never parses.
ALTER TABLE instance_data ADD COLUMN bulk jsonb NOT NULL DEFAULT '{}';
