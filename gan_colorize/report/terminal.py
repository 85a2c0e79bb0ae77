"""The results tables in the terminal (rich), as the report shows them."""

from __future__ import annotations

from gan_colorize.report.document import Report
from gan_colorize.report.table import count_text


def print_summary(report: Report, console=None) -> None:
    """The results tables, best values in bold; the numbered n/a reasons below each table."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    if console is None:
        console = Console()
        if not console.is_terminal:  # logs and pipes: rich's 80 columns would squeeze the numbers
            console = Console(width=160)
    for section in report.sections:  # report.notes: the caller prints its own (a study's failed runs)
        table = Table(title=f"{section.dataset} ({count_text(section.n_images)})", title_justify="left")
        table.add_column("approach", no_wrap=True)
        for column in section.columns:
            table.add_column(column.header, justify="right", overflow="fold")  # never an ellipsis in a number
        for trow in section.rows:
            # Text, not markup: labels such as "unet_gan [run_a]" must print as they are
            cells = [
                Text(cell.text, style="red" if cell.missing else ("bold green" if cell.best else ""))
                for cell in trow.cells
            ]
            label = Text(trow.label, style="italic" if trow.row.reference else "")
            table.add_row(label, *cells)
        console.print(table)
        for line in section.footnote_lines:
            console.print(Text(line, style="red"))
        for warning in section.warnings:
            console.print(Text("warning: " + warning, style="yellow"))
