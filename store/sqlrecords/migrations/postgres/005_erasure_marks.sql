-- A tombstone made by an erasure remembers it: erased is the identifier type the record's id
-- was erased as (NULL for tombstones made otherwise, and for records). A write with a payload
-- does not bring such a record back unless an operator forces it (audited as
-- records.resurrected). Moves carry the mark like every other column.
ALTER TABLE records_live ADD COLUMN erased TEXT;
ALTER TABLE records_deleted ADD COLUMN erased TEXT;
-- Manifests name their first and last record ids by keyed hash from now on (first_id and
-- last_id hold the hashes, or nothing for a store without a key); the store rewrites the ids
-- of older manifests (ids_hashed 0) into hashes when it is opened with its key.
ALTER TABLE records_moves ADD COLUMN ids_hashed INTEGER NOT NULL DEFAULT 0;
