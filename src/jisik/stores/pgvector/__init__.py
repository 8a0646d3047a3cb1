"""PostgreSQL + pgvector implementation of :class:`~jisik.stores.index_base.IndexStore`.

Layout (all inside one schema, ``jisik`` by default)::

    meta(key, value)                         layout version
    collections(id, name, dim, embedder_id, current_version, last_version,
                live_docs, live_chunks, total_tokens, created_at, live_windows)
    versions(collection_id, version, created_at, status, documents, chunks, tokens,
             added_docs, removed_docs, replaced_docs, note)
    c<id>_chunks(key, doc_id, chunk_id, seq, text, title, source_uri, locator, metadata,
                 char_start, char_end, tokens text[], ntokens, embedding vector(dim),
                 added_version, removed_version)               every row of every kept version
    c<id>_docs(doc_id, fingerprint, chunks, added_version, removed_version)
    c<id>_postings(token, key, tf, dl)       inverted index of the *current* version (BM25)
    c<id>_df(token, n)                       document frequencies of the *current* version
    c<id>_live(key, doc_id, metadata)        filterable columns of the *current* version
    c<id>_windows(wkey, key, doc_id, seq, embedding vector(dim), added_version, removed_version)
                                             window vectors of long chunks (owner chunk ``key``)

Versions (MVCC): a row is part of version V iff ``added_version <= V`` and
(``removed_version`` is NULL or ``> V``). A batch is one PostgreSQL transaction on its own
connection, holding the collection row lock (one writer per collection): it inserts rows with
``added_version = V+1`` and stamps replaced/deleted rows ``removed_version = V+1``; commit then
updates postings/df/live/statistics, writes the versions row and sets ``current_version`` in
the same transaction, so readers switch from V to V+1 atomically and an interrupted batch
(exception, SIGKILL, lost connection) is rolled back by the server: nothing to clean up.

Invariant kept by commit and rollback: the rows of the *current* version are exactly those
with ``removed_version IS NULL``. Rollback to W physically deletes rows added after W and
clears ``removed_version`` on rows removed after W (rolled-back versions can never come back).
The newest ``keep_versions`` published versions stay restorable; rows only older versions
could see are deleted at commit (those versions become ``expired``), as in the embedded store.

Dense search: HNSW (``vector_cosine_ops``; a ``halfvec`` expression index for 2000 < dim <=
4000), partial on ``removed_version IS NULL``, built in bulk by the first commit that reaches
``hnsw_min_rows`` (smaller collections are scanned exactly). Filtered queries use pgvector
0.8 iterative scans; when the index yields fewer than ``top_n`` rows an exact scan over the
rows passing the filter answers instead, so selective filters never lose results.

Multi-vector passages: a chunk's window vectors carry its ``key`` and ``doc_id`` and are
stamped, deleted, rolled back and expired together with it (layout 2; a layout-1 schema is
migrated on open: empty windows tables). Dense search takes the ANN top-n chunks by their own
vector plus the owners of the ANN top window rows (``c<id>_whnsw``, built like ``c<id>_hnsw``
once ``hnsw_min_rows`` windows are live) and scores these candidates exactly as the best of the
own vector and all windows, so each chunk is returned once.

Lexical search: Okapi BM25 (Lucene's idf ``ln(1 + (N - df + 0.5) / (df + 0.5))``, k1=1.2,
b=0.75) over the Kiwi tokens the caller passes, computed exactly in SQL from the postings and
df tables, normalised by the query's upper bound like the embedded store (identical scores).
"""

from jisik.stores.pgvector.batch import PgBatch
from jisik.stores.pgvector.store import PgVectorStore

__all__ = ["PgBatch", "PgVectorStore"]
