"""Pieces shared by the `jisik` command modules (imported by cli.py and cli_pipeline.py)."""

from __future__ import annotations

from rich.console import Console

from jisik.core.errors import JisikError


def print_error(console: Console, exc: JisikError) -> None:
    """A JisikError for people: code + Korean message, the English one, and the hint (no traceback)."""
    console.print(f"[bold red]오류[/] [{exc.code}] {exc.message_ko}")
    if exc.message_en != exc.message_ko:
        console.print(f"[dim]{exc.message_en}[/]")
    if exc.hint:
        console.print(f"[yellow]도움말:[/] {exc.hint}")
