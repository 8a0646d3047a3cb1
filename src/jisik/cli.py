"""`jisik` command line: ingest, search, ask, eval, index management, the demo and the API server."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from jisik import __version__
from jisik.cli_common import print_error
from jisik.cli_pipeline import app as pipeline_app
from jisik.core.errors import InvalidInput, JisikError
from jisik.core.logging import configure_logging
from jisik.core.settings import get_settings

app = typer.Typer(help="jisik (지식): 한국어 우선 오프라인 RAG 플랫폼", no_args_is_help=True, add_completion=False)
index_app = typer.Typer(help="색인 관리 (목록, 버전, 롤백, 재구축, 삭제)", no_args_is_help=True)
app.add_typer(index_app, name="index")
app.add_typer(pipeline_app, name="pipeline")
faq_cli = typer.Typer(help="스마트스토어 FAQ 챗봇 앱 (FAQ 색인)", no_args_is_help=True)
app.add_typer(faq_cli, name="faq")
console = Console()
err = Console(stderr=True)
T = TypeVar("T")

CollectionOpt = Annotated[str, typer.Option("--collection", "-c", help="컬렉션 이름 (search: auto = 프로필로 라우팅)")]


def _runtime() -> Any:
    from jisik.runtime import Runtime

    return Runtime(get_settings())


def _guard(fn: Callable[[], T]) -> T:
    """Run a command body; print a JisikError clearly (no traceback) and exit with code 2."""
    try:
        return fn()
    except JisikError as exc:
        print_error(err, exc)
        raise typer.Exit(2) from None


@contextmanager
def _progress(label: str, total: int | None) -> Iterator[Callable[[int, int], None]]:
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[extra]}"), TimeElapsedColumn(), console=err, transient=False,
                  disable=not err.is_terminal and total is None) as progress:
        task = progress.add_task(label, total=total, extra="")

        def update(done: int, chunks: int) -> None:
            progress.update(task, completed=done, extra=f"청크 {chunks}")

        yield update


@app.callback()
def _main(
    log_level: Annotated[str, typer.Option(help="로그 수준")] = "WARNING",
) -> None:
    settings = get_settings()
    configure_logging(log_level or settings.log_level, settings.log_format)


@app.command()
def version() -> None:
    """버전을 출력합니다."""
    console.print(f"jisik {__version__}")


def ingest_path(rt: Any, path: Path, collection: str, fmt: str = "auto", chunker: str | None = None,
                sync: bool = False, note: str = "") -> Any:
    from jisik.pipeline.loaders import load_documents
    from jisik.text.chunking import make_chunker

    docs, default_chunker = load_documents(path, fmt)
    ix = rt.indexer(make_chunker(chunker or default_chunker))
    with _progress(f"색인: {collection}", len(docs)) as update:
        return ix.index(collection, docs, sync=sync, note=note or f"ingest {path.name}", progress=update)


@app.command()
def ingest(
    path: Annotated[Path, typer.Argument(help="파일 또는 폴더 (FAQ .pkl, AutoRAG .parquet, .jsonl, .md/.txt)")],
    collection: CollectionOpt = "default",
    fmt: Annotated[str, typer.Option("--format", help="auto | faq-pickle | autorag | jsonl | text")] = "auto",
    chunker: Annotated[str | None, typer.Option(help="sentence | whole | page")] = None,
    sync: Annotated[bool, typer.Option(help="입력에 없는 문서는 색인에서 삭제")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="결과를 JSON으로 출력")] = False,
) -> None:
    """문서를 읽어 청크로 나누고, 임베딩하고, 새 버전으로 색인합니다 (바뀐 문서만)."""
    rt = _runtime()
    report = _guard(lambda: ingest_path(rt, path, collection, fmt, chunker, sync))
    if as_json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
        return
    console.print(
        f"[green]완료[/] {collection} v{report.version}: 문서 {report.documents_seen} "
        f"(추가 {report.added}, 변경 {report.updated}, 그대로 {report.unchanged}, 삭제 {report.deleted}), "
        f"청크 {report.chunks_indexed} (윈도 벡터 {report.windows_indexed}), {report.seconds:.1f}초"
    )


def _hits_table(result: Any) -> Table:
    table = Table(show_lines=False)
    for col in ("#", "점수", "문서", "위치", "내용"):
        table.add_column(col, overflow="fold")
    for i, hit in enumerate(result.hits, 1):
        c = hit.chunk
        loc = ", ".join(f"{k}={v}" for k, v in c.locator.items()) or "-"
        snippet = c.text.replace("\n", " ")[:120]
        table.add_row(str(i), f"{hit.score:.3f}", c.title or c.doc_id, loc, snippet)
    return table


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="검색어")],
    collection: CollectionOpt = "default",
    top_k: Annotated[int, typer.Option("--top-k", "-k")] = 5,
    filters: Annotated[str | None, typer.Option("--filter", help='JSON, 예: {"category": "가입절차"}')] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """하이브리드 검색 결과를 출처와 함께 보여줍니다."""
    rt = _runtime()

    def run() -> Any:
        flt = _parse_json(filters) if filters else None
        target = _route(rt, query) if collection == "auto" else collection
        return rt.retriever.retrieve(query, target, top_k=top_k, filters=flt)

    result = _guard(run)
    if as_json:
        print(json.dumps({
            "query": result.query, "collection": result.collection, "timings_ms": result.timings_ms,
            "hits": [{"score": h.score, "text": h.chunk.text, "citation": h.citation.to_dict()} for h in result.hits],
        }, ensure_ascii=False))
        return
    console.print(_hits_table(result))
    for i, hit in enumerate(result.hits, 1):  # provenance, unwrapped: doc id (table + row key) <- landed object/run
        if hit.chunk.source_uri:
            console.print(f"[{i}] {hit.chunk.doc_id} ← {hit.chunk.source_uri}", style="dim", soft_wrap=True,
                          markup=False, highlight=False)
    console.print(f"[dim]{result.timings_ms['total']:.1f} ms[/]")


def _route(rt: Any, query: str) -> str:
    """``-c auto``: the collection whose profile (``jisik index describe``) fits the query best."""
    from jisik.retrieval.router import QueryRouter, load_profiles, route_or_error

    profiles = load_profiles(rt.settings.home)
    name, score = route_or_error(QueryRouter(profiles, rt.embedder), rt.retriever.validate_query(query))
    console.print(f"[dim]→ 컬렉션 '{name}' (route score {score:.2f})[/]")
    return name


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"필터 JSON이 올바르지 않습니다: {exc.msg}", f"Invalid filter JSON: {exc}") from exc


def answer_once(rt: Any, question: str, collection: str, top_k: int = 5) -> dict[str, Any]:
    from jisik.rag.extractive import extractive_answer

    # an answer may need several passages of one document (e.g. two sections of a guide)
    result = rt.retriever.retrieve(question, collection, top_k=top_k, overrides={"max_per_doc": 3})
    ans = extractive_answer(result.query, result.hits, rt.tokenizer)
    return {
        "answer": ans.text, "provider": ans.provider, "grounded": ans.grounded,
        "citations": [h.citation.to_dict() | {"text": h.chunk.text} for h in result.hits],
        "timings_ms": result.timings_ms,
    }


def _print_answer(out: dict[str, Any]) -> None:
    console.print(f"\n[bold]답변[/] [dim](추출형: LLM 없이 문서 문장을 인용)[/]\n{out['answer']}\n")
    for i, c in enumerate(out["citations"], 1):
        loc = ", ".join(f"{k}={v}" for k, v in c["locator"].items())
        console.print(f"[cyan][{i}][/] {c['title'] or c['doc_id']} [dim]{loc} {c['source_uri']}[/]")


@app.command()
def ask(
    question: Annotated[str | None, typer.Argument(help="질문 (생략하면 대화형)")] = None,
    collection: CollectionOpt = "default",
    top_k: Annotated[int, typer.Option("--top-k", "-k")] = 5,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """질문에 답합니다 (출처 표시). 질문 없이 실행하면 대화형으로 묻고 답합니다."""
    rt = _runtime()
    if question is not None:
        out = _guard(lambda: answer_once(rt, question, collection, top_k))
        if as_json:
            print(json.dumps(out, ensure_ascii=False))
        else:
            _print_answer(out)
        return
    console.print(f"[bold]jisik[/] 컬렉션 '{collection}'에 질문하세요. 끝내려면 빈 줄 또는 Ctrl-D.")
    for line in sys.stdin if not sys.stdin.isatty() else iter(lambda: console.input("[bold green]질문> [/]"), ""):
        q = line.strip()
        if not q:
            break
        try:
            _print_answer(answer_once(rt, q, collection, top_k))
        except JisikError as exc:
            err.print(f"[red]오류[/] {exc.message_ko}")


@app.command("eval")
def eval_cmd(
    qa: Annotated[Path, typer.Option("--qa", help="AutoRAG qa (.parquet/.jsonl)")],
    corpus: Annotated[Path, typer.Option("--corpus", help="AutoRAG corpus (.parquet/.jsonl)")],
    as_json: Annotated[bool, typer.Option("--json", help="마지막 줄에 JSON 한 줄")] = False,
    fusion: Annotated[str | None, typer.Option(help="rrf | weighted | adaptive")] = None,
    mode: Annotated[str, typer.Option(help="hybrid | lexical | dense")] = "hybrid",
    rerank: Annotated[str | None, typer.Option(help="none | dense (default) | embedder")] = None,
    limit: Annotated[int | None, typer.Option(help="처음 N개 질문만")] = None,
    chunker: Annotated[str, typer.Option(help="page | sentence | whole")] = "page",
) -> None:
    """AutoRAG 형식 데이터로 검색 품질(recall@1/5/10, MRR, nDCG@10)을 잽니다."""
    from jisik.eval.runner import run_eval

    rt = _runtime()
    metrics = _guard(lambda: run_eval(rt, qa, corpus, fusion=fusion, mode=mode, rerank=rerank, limit=limit,
                                      chunker=chunker, progress=_progress))
    if as_json:
        print(json.dumps(metrics, ensure_ascii=False))
        return
    table = Table(title=f"검색 평가: {qa.name} ({metrics['queries']}문항)")
    table.add_column("지표")
    table.add_column("값", justify="right")
    for key, value in metrics.items():
        table.add_row(key, str(value))
    console.print(table)


@index_app.command("list")
def index_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """컬렉션 목록."""
    rt = _runtime()
    cols = _guard(lambda: rt.store.list_collections())
    if as_json:
        print(json.dumps([dataclasses.asdict(c) for c in cols], ensure_ascii=False))
        return
    table = Table()
    for col in ("컬렉션", "버전", "문서", "청크", "윈도 벡터", "차원", "임베딩 모델"):
        table.add_column(col)
    for c in cols:
        table.add_row(c.name, str(c.version), str(c.documents), str(c.chunks), str(c.windows), str(c.dim),
                      c.embedder_id)
    console.print(table)


@index_app.command("describe")
def index_describe(
    name: Annotated[str, typer.Argument(help="컬렉션 이름")],
    description: Annotated[str, typer.Option("--description", "-d", help="이 컬렉션이 다루는 내용")],
    keywords: Annotated[list[str] | None, typer.Option("--keyword", "-k", help="라우팅 키워드 (여러 번)")] = None,
) -> None:
    """컬렉션 프로필을 저장합니다 (`jisik search -c auto` 라우팅에 사용)."""
    from jisik.retrieval.router import CollectionProfile, save_profile

    rt = _runtime()
    _guard(lambda: rt.store.get_collection(name))  # the collection must exist
    save_profile(rt.settings.home, CollectionProfile(name, description, tuple(keywords or ())))
    console.print(f"[green]'{name}' 프로필을 저장했습니다.[/]")


@index_app.command("versions")
def index_versions(collection: Annotated[str, typer.Argument()]) -> None:
    """컬렉션의 버전 목록 (각 색인 배치가 한 버전)."""
    rt = _runtime()
    versions = _guard(lambda: rt.store.versions(collection))
    table = Table()
    for col in ("버전", "상태", "시각", "문서", "청크", "추가", "삭제", "메모"):
        table.add_column(col)
    for v in versions:
        table.add_row(str(v.version), v.status, v.created_at, str(v.documents), str(v.chunks),
                      str(v.added_docs), str(v.removed_docs), v.note)
    console.print(table)


@index_app.command("rollback")
def index_rollback(collection: Annotated[str, typer.Argument()], version: Annotated[int, typer.Argument()]) -> None:
    """이전 버전으로 되돌립니다."""
    rt = _runtime()
    info = _guard(lambda: rt.store.rollback(collection, version))
    console.print(f"[green]{collection}[/]: 현재 버전 {info.version} (문서 {info.documents}, 청크 {info.chunks})")


@index_app.command("rebuild")
def index_rebuild(collection: Annotated[str, typer.Argument()]) -> None:
    """검색 스냅샷(BM25/벡터/HNSW 파일)을 원본 로그에서 다시 만듭니다."""
    rt = _runtime()
    if not hasattr(rt.store, "rebuild_snapshot"):
        raise typer.BadParameter("this store has no snapshots to rebuild")
    with err.status(f"{collection}: 스냅샷 재구축 중 (BM25, 벡터, HNSW)…"):
        snap = _guard(lambda: rt.store.rebuild_snapshot(collection))
    console.print(f"[green]{collection}[/]: 버전 {snap.version} 스냅샷 재구축 ({snap.size} 청크, "
                  f"윈도 벡터 {snap.n_windows})")


@index_app.command("drop")
def index_drop(
    collection: Annotated[str, typer.Argument()],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="확인 없이 삭제")] = False,
) -> None:
    """컬렉션을 삭제합니다."""
    rt = _runtime()
    if not yes and not typer.confirm(f"'{collection}' 컬렉션을 삭제할까요?"):
        raise typer.Exit(1)
    _guard(lambda: rt.store.drop_collection(collection))
    console.print(f"[green]삭제됨[/] {collection}")


@app.command()
def demo(
    question: Annotated[list[str] | None, typer.Option("--ask", help="이 질문들에 답하고 끝냄 (서버 없이)")] = None,
    cli: Annotated[bool, typer.Option("--cli", help="웹 대신 터미널에서 대화형으로 묻고 답함")] = False,
    host: Annotated[str, typer.Option(help="웹/API 서버 주소")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="웹/API 서버 포트")] = 8000,
) -> None:
    """번들된 공공 데이터로 데모 지식베이스를 만들고, 웹 UI와 API로 서비스합니다 (http://HOST:PORT/ui/)."""
    import os

    from jisik.demo import DEMO_COLLECTION, build_demo

    rt = _runtime()
    try:
        reports = _guard(lambda: build_demo(rt, progress=_progress))
        for r in reports:
            console.print(f"[green]준비됨[/] {r.collection} v{r.version}: 문서 {r.documents_seen}, "
                          f"새로 색인한 청크 {r.chunks_indexed}")
        if question:
            for q in question:
                console.print(f"\n[bold green]질문>[/] {q}")
                _print_answer(_guard(partial(answer_once, rt, q, DEMO_COLLECTION)))
            return
    finally:
        rt.close()
    if cli:  # its own runtime, as the server below has its own
        ask(None, DEMO_COLLECTION, 5, False)
        return
    os.environ.setdefault("JISIK_DEFAULT_COLLECTION", DEMO_COLLECTION)
    if not get_settings().admin_api_key:  # the dashboard needs one: a fresh key for this demo run
        import secrets

        os.environ["JISIK_ADMIN_API_KEY"] = secrets.token_urlsafe(16)
        console.print(f"[bold]관리자 키[/] (이번 실행용): {os.environ['JISIK_ADMIN_API_KEY']}")
    console.print(f"\n[bold]채팅[/] http://{host}:{port}/ui/   [bold]관리자[/] http://{host}:{port}/ui/admin/   "
                  f"[bold]API 문서[/] http://{host}:{port}/docs   (끝내려면 Ctrl+C)")
    serve(host=host, port=port, workers=1, log_level="INFO")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="주소 (모든 인터페이스: 0.0.0.0)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="포트")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn 작업 프로세스 수 (세션은 Redis에 두세요)")] = 1,
    log_level: Annotated[str, typer.Option("--log-level", help="로그 수준")] = "INFO",
) -> None:
    """API 서버(FastAPI)를 실행합니다. 문서: http://HOST:PORT/docs"""
    import os

    import uvicorn

    os.environ["JISIK_LOG_LEVEL"] = log_level.upper()  # read by each worker's app factory
    get_settings.cache_clear()
    uvicorn.run("jisik.api.app:serve_app", factory=True, host=host, port=port, workers=workers,
                log_level=log_level.lower(), access_log=False, timeout_graceful_shutdown=10,
                ws_max_size=get_settings().max_request_bytes)


@faq_cli.command("ingest")
def faq_ingest(
    path: Annotated[Path | None, typer.Argument(
        help="FAQ pickle (기본: JISIK_FAQ_PKL 또는 ../shared/data/smartstore_faq/final_result.pkl)")] = None,
    collection: CollectionOpt = "faq",
    as_json: Annotated[bool, typer.Option("--json", help="결과를 JSON으로 출력")] = False,
) -> None:
    """FAQ pickle을 색인하고 주제 판별용 질문 임베딩을 저장합니다 (바뀐 항목만, 다시 실행해도 안전)."""
    from jisik.apps.faq.ingest import ingest_faq

    rt = _runtime()
    out = _guard(lambda: ingest_faq(rt, path, collection, progress=_progress))
    if as_json:
        print(json.dumps(out.to_dict(), ensure_ascii=False))
        return
    r = out.index
    console.print(
        f"[green]완료[/] {collection} v{r.version}: FAQ {r.documents_seen}개 (추가 {r.added}, 변경 {r.updated}, "
        f"그대로 {r.unchanged}, 삭제 {r.deleted}), 청크 {r.chunks_indexed}, {r.seconds:.1f}초; "
        f"주제 판별용 질문 {out.prototypes}개{' (새로 만듦)' if out.prototypes_rebuilt else ''}"
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
