"""SQL extraction through SQLAlchemy 2 (SQLite, PostgreSQL via psycopg, MySQL/MariaDB via pymysql).

The configured query is sent with bound parameters only (``:name`` in the text, values in
``params``). Rows are streamed from a server-side cursor (``yield_per``) and written batch by batch
to CSV or Parquet, so only about one batch is ever held in memory.

Incremental extraction by ``cursor_column`` wraps the query as::

    SELECT * FROM (<query>) AS src WHERE src.<col> > :_cursor ORDER BY src.<col>

(first run: ``WHERE src.<col> IS NOT NULL``; rows whose cursor is NULL are never extracted). The
highest value seen goes to ``Extracted.cursor``; the orchestrator commits it after landing. A
timestamp cursor only works if new rows never get a timestamp at or below one already extracted
(prefer an id, or an ``updated_at`` set by the database at commit time).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from jisik.core.errors import ConfigError, InvalidInput, Unavailable
from jisik.core.logging import get_logger
from jisik.core.pseudonym import install_secret
from jisik.core.settings import get_settings
from jisik.pipeline.manifest import CursorRange, Extracted
from jisik.pipeline.sources.base import CONTENT_TYPES, ParseHints, RunContext, StateStore, expand_env
from jisik.pipeline.sources.config import SqlSourceConfig, check_identifier
from jisik.pipeline.sources.tabular import BatchWriter, Masker, open_writer

log = get_logger(__name__)


def mask_salt(env_name: str) -> bytes:
    """The masking salt: ``$env_name`` if set, else a random per-installation secret kept in
    ``{home}/pipeline/mask.salt`` (mode 0600). Set the variable when several machines extract."""
    return install_secret(get_settings().home / "pipeline" / "mask.salt", env_name)


def cursor_text(value: Any, cursor_type: str) -> str:
    """A cursor value as stored in the state store."""
    if cursor_type == "id" and isinstance(value, int | Decimal) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def cursor_param(stored: str, cursor_type: str, dialect: str) -> Any:
    """The bound value for ``:_cursor``. SQLite keeps timestamps as text, so it gets the text back."""
    if cursor_type == "id":
        try:
            return int(stored)
        except ValueError:
            return stored
    if dialect == "sqlite":
        return stored
    try:
        return datetime.fromisoformat(stored)
    except ValueError:
        return stored


def _find(columns: Sequence[str], name: str, what: str) -> int:
    lowered = [c.lower() for c in columns]
    if name.lower() not in lowered:
        raise InvalidInput(f"쿼리 결과에 {what} 컬럼 '{name}'이(가) 없습니다.",
                           f"The query result has no {what} column '{name}'.",
                           details={"columns": list(columns)})
    return lowered.index(name.lower())


def _db_error(exc: DBAPIError, during: str) -> Exception:
    first_line = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
    if during == "connect" or exc.connection_invalidated:
        return Unavailable(f"데이터베이스에 연결할 수 없습니다: {first_line}",
                           f"Cannot reach the database: {first_line}", hint="check the URL, server and credentials")
    return InvalidInput(f"SQL 쿼리가 실패했습니다: {first_line}", f"The SQL query failed: {first_line}")


class SqlSource:
    kind = "sql"

    def __init__(self, config: SqlSourceConfig) -> None:
        if config.cursor_column is not None:
            check_identifier(config.cursor_column, "커서 컬럼(cursor column)")
            if config.cursor_column.lower() in {c.lower() for c in config.mask_columns}:
                raise InvalidInput("커서 컬럼은 마스킹할 수 없습니다.", "The cursor column cannot be masked.")
        if config.table is not None:
            check_identifier(config.table, "테이블(table)")
        self.config = config

    @property
    def name(self) -> str:
        return self.config.name

    def statement(self, dialect: Dialect, start: str | None) -> tuple[str, dict[str, Any]]:
        """The SQL text actually sent and its bound parameters."""
        cfg = self.config
        query = cfg.query.strip().rstrip(";").strip()
        params: dict[str, Any] = dict(cfg.params)
        if cfg.cursor_column is None:
            return query, params
        col = dialect.identifier_preparer.quote(cfg.cursor_column)
        if start is None:
            where = f"src.{col} IS NOT NULL"
        else:
            where = f"src.{col} > :_cursor"
            params["_cursor"] = cursor_param(start, cfg.cursor_type, dialect.name)
        return f"SELECT * FROM ({query}) AS src WHERE {where} ORDER BY src.{col}", params

    def _start(self, state: StateStore) -> str | None:
        cfg = self.config
        if cfg.cursor_column is None:
            return None
        saved = state.get_cursor(cfg.name)
        if saved is None:
            return None
        if saved.column != cfg.cursor_column:
            raise ConfigError(
                f"소스 '{cfg.name}'의 저장된 커서 컬럼({saved.column})이 설정({cfg.cursor_column})과 다릅니다.",
                f"Source '{cfg.name}' has a stored cursor on '{saved.column}', not '{cfg.cursor_column}'.",
                hint="reset the source's cursor to extract everything again",
            )
        return saved.value

    def extract(self, run: RunContext) -> list[Extracted]:
        cfg = self.config
        table = cfg.table or cfg.name
        start = self._start(run.state)
        try:
            engine = create_engine(expand_env(cfg.url))
        except (ArgumentError, NoSuchModuleError, ValueError) as exc:
            raise ConfigError(f"소스 '{cfg.name}'의 데이터베이스 URL이 올바르지 않습니다.",
                              f"Source '{cfg.name}': invalid database URL or missing driver "
                              f"({type(exc).__name__}).") from None
        path = run.staging_for(cfg.name) / f"{table}.{cfg.fmt}"
        sql, params = self.statement(engine.dialect, start)
        try:
            rows, end, schema = self._stream(engine, sql, params, path)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        finally:
            engine.dispose()
        log.info("sql source extracted", extra={"source": cfg.name, "dialect": engine.dialect.name, "rows": rows})
        if rows == 0:
            path.unlink(missing_ok=True)
            return []
        hints = ParseHints.from_table(cfg.hints)
        if not hints.key_columns and cfg.cursor_column and cfg.cursor_type == "id":
            hints.key_columns = [cfg.cursor_column]
        cursor = CursorRange(column=cfg.cursor_column, start=start, end=end) if cfg.cursor_column else None
        return [Extracted(
            path=path, name=table, fmt=cfg.fmt, source=cfg.name, source_kind="sql", query=sql,
            params={**cfg.params, **hints.to_params()}, row_count=rows, schema=schema,
            masked_columns=list(cfg.mask_columns), cursor=cursor, content_type=CONTENT_TYPES[cfg.fmt],
        )]

    def _stream(self, engine: Any, sql: str, params: dict[str, Any], path: Path) -> tuple[int, str | None, list[Any]]:
        cfg = self.config
        try:
            conn = engine.connect()
        except DBAPIError as exc:
            raise _db_error(exc, "connect") from None
        with conn:
            try:
                result = conn.execution_options(yield_per=cfg.batch_size).execute(text(sql), params)
            except DBAPIError as exc:
                raise _db_error(exc, "query") from None
            except SQLAlchemyError as exc:  # e.g. a bound parameter without a value
                raise InvalidInput(f"SQL 쿼리를 실행할 수 없습니다: {exc}",
                                   f"Cannot run the SQL query: {exc}") from None
            columns = list(result.keys())
            ci = _find(columns, cfg.cursor_column, "커서(cursor)") if cfg.cursor_column else None
            masks = [_find(columns, c, "마스킹(mask)") for c in cfg.mask_columns]
            masker = Masker(cfg.mask, mask_salt(cfg.mask_salt_env)) if masks else None
            writer: BatchWriter = open_writer(cfg.fmt, path, columns)
            last: Any = None
            count = 0
            try:
                # fetchmany, not partitions(): its generator would keep the previous batch alive
                while part := result.fetchmany(cfg.batch_size):
                    batch: list[Sequence[Any]] = []
                    stop = False
                    for row in part:
                        if cfg.max_rows is not None and count >= cfg.max_rows and (ci is None or row[ci] != last):
                            stop = True
                            break
                        if ci is not None:
                            last = row[ci]
                        if masker is not None:
                            values = list(row)
                            for i in masks:
                                values[i] = masker(values[i])
                            batch.append(values)
                        else:
                            batch.append(row)
                        count += 1
                    writer.write(batch)
                    del batch, part  # drop this batch before the next one is fetched
                    if stop:
                        break
            except DBAPIError as exc:
                raise _db_error(exc, "query") from None
            finally:
                result.close()
                schema = writer.close()
        end = cursor_text(last, cfg.cursor_type) if last is not None else None
        return count, end, schema
