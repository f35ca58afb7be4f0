-- Search documents are stored out of line without compression. A `doc` vector (sorted
-- unique CJK bigrams and words, each with its 2-byte positions) does not shrink under
-- pglz by the quarter PostgreSQL requires, so every row paid for a compression attempt
-- that was then thrown away: about 20 µs of the server's CPU per indexed item
-- (bench/results/profile-2026-12-05b.txt), for the same bytes on disk. Applies to rows
-- written from now on; stored rows stay as they are.
ALTER TABLE item_search ALTER COLUMN doc SET STORAGE EXTERNAL;
