-- The search index is built behind the log, not inside the append transaction: an
-- indexer (exchange.service.search.Indexer) follows the items by index and writes
-- `item_search` rows in batches, so tokenizing and GIN maintenance never hold up an
-- acknowledgement. `upto` is the number of leading items (idx < upto) the indexer has
-- handled. Until now rows were written with the item, so every existing item is covered
-- (items from before 0006 are found by the version backfill, as before).
CREATE TABLE search_state (
    id    int PRIMARY KEY CHECK (id = 1),
    upto  bigint NOT NULL
);
INSERT INTO search_state (id, upto) SELECT 1, size FROM log_head WHERE id = 1;
