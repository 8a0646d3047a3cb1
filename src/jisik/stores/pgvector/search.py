"""Queries of the PostgreSQL store: lexical (BM25 in SQL), dense (pgvector HNSW / exact) and fetching
chunks or vectors by key."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from jisik.core.errors import InvalidInput, NotFound
from jisik.core.types import Chunk
from jisik.retrieval.filters import Filter
from jisik.stores.index_base import FloatArray, KeyArray
from jisik.stores.pgvector.base import _StoreBase
from jisik.stores.pgvector.common import (
    HALFVEC_MAX_DIM,
    Conn,
    Vector,
    _clean_tokens,
    _Coll,
    _finite_vectors,
    _Retry,
    sql,
)
from jisik.stores.pgvector.filters import _FilterSQL


class _SearchMixin(_StoreBase):
    """search_lexical, search_dense, fetch and vectors."""

    # -- search -----------------------------------------------------------------

    @staticmethod
    def _top_n(top_n: int) -> int:
        """Validated top_n; 0 or less means "nothing" (empty arrays), like the embedded store."""
        if isinstance(top_n, bool) or not isinstance(top_n, int | np.integer):
            raise InvalidInput("top_n은 정수여야 합니다.", f"top_n must be an integer (got {top_n!r}).")
        return max(0, int(top_n))

    @staticmethod
    def _empty() -> tuple[KeyArray, FloatArray]:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)

    @staticmethod
    def _arrays(rows: Sequence[Sequence[Any]]) -> tuple[KeyArray, FloatArray]:
        if not rows:
            return _SearchMixin._empty()
        keys = np.fromiter((int(r[0]) for r in rows), dtype=np.int64, count=len(rows))
        scores = np.fromiter((float(r[1]) for r in rows), dtype=np.float32, count=len(rows))
        return keys, scores

    def search_lexical(
        self, name: str, tokens: Sequence[str], top_n: int, flt: Filter
    ) -> tuple[KeyArray, FloatArray]:
        """Okapi BM25 over the current version, normalised by the query's upper bound.

        score(d) = sum over unique query tokens t in d of
        idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl)), idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5)),
        divided by sum of idf(t) over the unique query tokens (unknown tokens: df = 0, maximal idf).
        """
        n = self._top_n(top_n)
        toks = list(dict.fromkeys(_clean_tokens(tokens)))
        fsql = _FilterSQL()
        where = fsql.build(flt if flt is not None else Filter())

        def go(conn: Conn) -> tuple[KeyArray, FloatArray]:
            coll = self._coll(conn, name)
            if not toks or n == 0:
                return self._empty()
            with conn.transaction():
                # statistics and postings from one snapshot, even if a batch commits meanwhile
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                st = conn.execute(
                    sql.SQL("SELECT live_chunks, total_tokens FROM {} WHERE id = %s").format(self._t("collections")),
                    (coll.id,),
                ).fetchone()
                if st is None:  # dropped (and maybe re-created) since we cached its id
                    with self._cache_lock:
                        self._cache.pop(name, None)
                    raise _Retry()
                n_rows, total = int(st[0]), int(st[1])
                if n_rows == 0:
                    return self._empty()
                dfs: dict[str, int] = {
                    r[0]: int(r[1])
                    for r in conn.execute(
                        sql.SQL("SELECT token, n FROM {} WHERE token = ANY(%s::text[])").format(
                            coll.table(self.schema, "df")
                        ),
                        (toks,),
                    ).fetchall()
                }
                idf = {t: math.log1p((n_rows - dfs.get(t, 0) + 0.5) / (dfs.get(t, 0) + 0.5)) for t in toks}
                bound = sum(idf.values())
                known = [t for t in toks if t in dfs]
                if not known:
                    return self._empty()
                avgdl = total / n_rows if total > 0 else 1.0
                rows = self._bm25(conn, coll, known, idf, dfs, avgdl, n, flt, where, fsql.params)
            keys, scores = self._arrays(rows)
            return keys, (scores / np.float32(bound) if bound > 0 else scores).astype(np.float32)

        result: tuple[KeyArray, FloatArray] = self._run(go)
        return result

    def _bm25(
        self, conn: Conn, coll: _Coll, known: list[str], idf: dict[str, float], dfs: dict[str, int],
        avgdl: float, n: int, flt: Filter, where: sql.Composable, fparams: dict[str, Any],
    ) -> list[tuple[Any, ...]]:
        """Raw BM25 top-n ``(key, score)`` rows, best first (ties: smaller key first)."""
        p_t = coll.table(self.schema, "postings")
        live = coll.table(self.schema, "live")
        est = sum(dfs[t] for t in known)  # posting rows a full evaluation reads
        base: dict[str, Any] = {
            "toks": known, "idf": [idf[t] for t in known], "k1": self.k1, "b": self.b,
            "avgdl": float(avgdl), "n": n, **fparams,
        }
        score = sql.SQL(
            "sum(w.idf * p.tf * (%(k1)s + 1.0) / (p.tf + %(k1)s * (1.0 - %(b)s + %(b)s * p.dl / %(avgdl)s)))"
        )
        w = sql.SQL("unnest(%(toks)s::text[], %(idf)s::float8[]) AS w(token, idf)")
        # filters are evaluated on the narrow "live" table: per posting for short posting lists,
        # as a hashed set of allowed keys when the query reads many postings
        with_allowed: sql.Composable = sql.SQL("")
        fjoin: sql.Composable = sql.SQL("")
        if flt:
            if est <= self._lex_join_max:
                fjoin = sql.SQL("JOIN {live} c ON c.key = p.key AND {where}").format(live=live, where=where)
            else:
                with_allowed = sql.SQL(
                    "WITH allowed AS MATERIALIZED (SELECT c.key FROM {live} c WHERE {where})"
                ).format(live=live, where=where)
                fjoin = sql.SQL("JOIN allowed a ON a.key = p.key")

        q = sql.SQL(
            """{with_allowed}
            SELECT p.key, {score} AS score
            FROM {p} p JOIN {w} ON w.token = p.token {fjoin}
            WHERE p.token = ANY(%(toks)s::text[])
            GROUP BY p.key ORDER BY score DESC, p.key LIMIT %(n)s"""
        ).format(with_allowed=with_allowed, score=score, p=p_t, w=w, fjoin=fjoin)
        return conn.execute(q, base).fetchall()

    WINDOW_SPREAD = 4  # window rows asked per wanted chunk (windows of one chunk tend to come together)

    def search_dense(
        self, name: str, vector: FloatArray, top_n: int, flt: Filter
    ) -> tuple[KeyArray, FloatArray]:
        """Best ``top_n`` chunks by cosine similarity of their own vector or, better, one of their
        window vectors (each chunk once).

        Candidates are the ANN top-n chunks by their own vector plus the owners of the ANN top
        window rows (enough rows for ``top_n`` distinct owners); the candidates are then scored
        exactly over their own vector and all their windows. When an ANN index runs dry (very
        selective filter), an exact scan over the rows passing the filter answers instead.
        """
        n = self._top_n(top_n)
        fsql = _FilterSQL()
        where = fsql.build(flt if flt is not None else Filter())

        def go(conn: Conn) -> tuple[KeyArray, FloatArray]:
            coll = self._coll(conn, name)
            q = _finite_vectors(vector, coll.dim, None, "search_dense")
            if n == 0:
                return self._empty()
            params: dict[str, Any] = {"q": q, "n": n, **fsql.params}
            ch = coll.table(self.schema, "chunks")
            live = coll.table(self.schema, "live")
            emb = sql.SQL("c.embedding")
            approx = sql.SQL(
                """SELECT key, 1.0 - dist AS score FROM (
                    SELECT c.key, c.embedding <=> %(q)s AS dist
                    FROM {ch} c WHERE c.removed_version IS NULL AND {where}
                    ORDER BY {ann} <=> {qa} LIMIT %(n)s) s
                ORDER BY dist, key"""
            ).format(ch=ch, where=where, ann=coll.ann_expr(emb), qa=coll.ann_query(sql.Placeholder("q")))
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # one snapshot for all steps
                windows_sql = sql.SQL("(SELECT live_windows FROM {} WHERE id = %(cid)s)").format(
                    self._t("collections")
                )
                ann = coll.dim <= HALFVEC_MAX_DIM
                if ann:
                    st = conn.execute(
                        sql.SQL(
                            "SELECT set_config('hnsw.ef_search', %(ef)s, true), "
                            "set_config('hnsw.iterative_scan', %(it)s, true), "
                            "set_config('hnsw.max_scan_tuples', %(mst)s, true), {}"
                        ).format(windows_sql),
                        {"ef": str(min(1000, max(self._ef_search, n))), "it": self._iterative,
                         "mst": str(self._max_scan_tuples), "cid": coll.id},
                    ).fetchone()
                else:
                    st = conn.execute(sql.SQL("SELECT {}").format(windows_sql), {"cid": coll.id}).fetchone()
                if st is None or st[-1] is None:  # dropped (and maybe re-created) since we cached its id
                    with self._cache_lock:
                        self._cache.pop(name, None)
                    raise _Retry()
                has_windows = int(st[-1]) > 0
                if ann:
                    rows = conn.execute(approx, params).fetchall()
                    # fewer than n: fine if that is every row passing the filter (cheap to check,
                    # at most n rows are counted)
                    complete = len(rows) >= n or len(rows) >= self._count_upto(
                        conn, sql.SQL("SELECT 1 FROM {live} c WHERE {where}").format(live=live, where=where),
                        params, n,
                    )
                    if complete and not has_windows:
                        return self._arrays(rows)
                    if complete:
                        owners = self._window_owners(conn, coll, params, where, bool(flt), n)
                        if owners is not None:
                            candidates = sorted({int(r[0]) for r in rows} | owners)
                            return self._arrays(conn.execute(self._best_sql(coll, candidates=True), {
                                **params, "cands": candidates}).fetchall())
                    if not has_windows:
                        # the ANN index ran dry (very selective filter or many history rows):
                        # an exact scan is cheap precisely when few rows match
                        conn.execute("SELECT set_config('enable_indexscan', 'off', true)")
                exact = self._exact_sql(coll, where, bool(flt), has_windows)
                return self._arrays(conn.execute(exact, params).fetchall())

        result: tuple[KeyArray, FloatArray] = self._run(go)
        return result

    @staticmethod
    def _count_upto(conn: Conn, rows_sql: sql.Composable, params: dict[str, Any], limit: int) -> int:
        """How many rows ``rows_sql`` yields, counting at most ``limit``."""
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM ({} LIMIT %(count_limit)s) x").format(rows_sql),
            {**params, "count_limit": limit},
        ).fetchone()
        return 0 if row is None else int(row[0])

    def _best_sql(self, coll: _Coll, *, candidates: bool) -> sql.Composed:
        """Exact score of chunk rows ``ch`` (own vector or best window), best first; over the
        keys ``%(cands)s`` or (``candidates=False``) over rows the caller's WHERE selects."""
        best = sql.SQL(
            "least(ch.embedding <=> %(q)s, coalesce((SELECT min(x.embedding <=> %(q)s) FROM {w} x "
            "WHERE x.key = ch.key), 2.0))"
        ).format(w=coll.table(self.schema, "windows"))
        head = sql.SQL("SELECT ch.key, 1.0 - {best} AS score FROM {ch} ch").format(
            best=best, ch=coll.table(self.schema, "chunks")
        )
        if candidates:
            return sql.SQL("{} WHERE ch.key = ANY(%(cands)s) ORDER BY score DESC, ch.key LIMIT %(n)s").format(head)
        return head

    def _exact_sql(self, coll: _Coll, where: sql.Composable, filtered: bool, has_windows: bool) -> sql.Composed:
        ch = coll.table(self.schema, "chunks")
        # evaluate a filter on the narrow live table, then score only what passed
        allowed = (
            sql.SQL(" AND ch.key IN (SELECT c.key FROM {live} c WHERE {where})").format(
                live=coll.table(self.schema, "live"), where=where
            )
            if filtered else sql.SQL("")
        )
        if has_windows:
            return sql.SQL(
                "{head} WHERE ch.removed_version IS NULL{allowed} ORDER BY score DESC, ch.key LIMIT %(n)s"
            ).format(head=self._best_sql(coll, candidates=False), allowed=allowed)
        return sql.SQL(
            """SELECT ch.key, 1.0 - (ch.embedding <=> %(q)s) AS score
            FROM {ch} ch WHERE ch.removed_version IS NULL{allowed}
            ORDER BY ch.embedding <=> %(q)s, ch.key LIMIT %(n)s"""
        ).format(ch=ch, allowed=allowed)

    def _window_owners(
        self, conn: Conn, coll: _Coll, params: dict[str, Any], where: sql.Composable, filtered: bool, n: int
    ) -> set[int] | None:
        """Owner keys of the ANN top window rows, enough for ``n`` distinct owners (or every
        window passing the filter); None when the ANN index ran dry before that."""
        w = coll.table(self.schema, "windows")
        cond = (
            sql.SQL(" AND EXISTS (SELECT 1 FROM {live} c WHERE c.key = w.key AND {where})").format(
                live=coll.table(self.schema, "live"), where=where
            )
            if filtered else sql.SQL("")
        )
        rows_sql = sql.SQL("SELECT w.key FROM {w} w WHERE w.removed_version IS NULL{cond}").format(w=w, cond=cond)
        top = sql.SQL("{rows} ORDER BY {ann} <=> {qa} LIMIT %(k)s").format(
            rows=rows_sql, ann=coll.ann_expr(sql.SQL("w.embedding")), qa=coll.ann_query(sql.Placeholder("q"))
        )
        k = n * self.WINDOW_SPREAD
        for _ in range(3):
            if coll.dim <= HALFVEC_MAX_DIM:
                ef = str(min(1000, max(self._ef_search, k)))
                conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (ef,))
            found = conn.execute(top, {**params, "k": k}).fetchall()
            owners = {int(r[0]) for r in found}
            if len(owners) >= n:
                return owners
            if len(found) < k:  # all of them, unless the index ran dry
                return owners if len(found) >= self._count_upto(conn, rows_sql, params, k) else None
            k *= 4
        return None

    # -- fetch ------------------------------------------------------------------

    @staticmethod
    def _keys(keys: Sequence[int]) -> list[int]:
        try:
            out = [int(k) for k in keys]
        except (TypeError, ValueError) as e:
            raise InvalidInput("키는 정수여야 합니다.", "Keys must be integers.") from e
        return out

    def _missing(self, name: str, missing: Sequence[int]) -> NotFound:
        return NotFound(
            f"컬렉션 '{name}'에 없는 키입니다: {list(missing)[:10]} (다시 검색하세요).",
            f"Unknown keys for collection '{name}': {list(missing)[:10]} (search again).",
            details={"missing": list(missing)[:100]},
        )

    def fetch(self, name: str, keys: Sequence[int]) -> list[Chunk]:
        ks = self._keys(keys)

        def go(conn: Conn) -> list[Chunk]:
            coll = self._coll(conn, name)
            if not ks:
                return []
            rows = conn.execute(
                sql.SQL(
                    "SELECT key, chunk_id, doc_id, text, seq, char_start, char_end, title, source_uri, "
                    "locator, metadata FROM {} WHERE key = ANY(%s)"
                ).format(coll.table(self.schema, "chunks")),
                (ks,),
            ).fetchall()
            by_key = {
                int(r[0]): Chunk(
                    chunk_id=r[1], doc_id=r[2], text=r[3], seq=int(r[4]), start=int(r[5]), end=int(r[6]),
                    title=r[7], source_uri=r[8], locator=dict(r[9]), metadata=dict(r[10]),
                )
                for r in rows
            }
            missing = [k for k in ks if k not in by_key]
            if missing:
                raise self._missing(name, missing)
            return [by_key[k] for k in ks]

        result: list[Chunk] = self._run(go)
        return result

    def vectors(self, name: str, keys: Sequence[int]) -> FloatArray:
        ks = self._keys(keys)

        def go(conn: Conn) -> FloatArray:
            coll = self._coll(conn, name)
            if not ks:
                return np.zeros((0, coll.dim), dtype=np.float32)
            with conn.cursor(binary=True) as cur:
                rows = cur.execute(
                    sql.SQL("SELECT key, embedding FROM {} WHERE key = ANY(%s)").format(
                        coll.table(self.schema, "chunks")
                    ),
                    (ks,),
                ).fetchall()
            by_key: dict[int, Any] = {int(r[0]): r[1] for r in rows}
            missing = [k for k in ks if k not in by_key]
            if missing:
                raise self._missing(name, missing)
            out = np.empty((len(ks), coll.dim), dtype=np.float32)
            for i, k in enumerate(ks):
                v = by_key[k]
                out[i] = v.to_numpy() if isinstance(v, Vector) else np.asarray(v, dtype=np.float32)
            return out

        result: FloatArray = self._run(go)
        return result
