"""`render`: the one table renderer behind every table kcompress prints.

`kc.summary`, `channel_report`, the demo's report, `tflite_export report`
and the benchmarks all measure first and then hand rows of cells to
`render`, in Markdown or as aligned text (larq's split between
`ModelProfile`, which measures, and `LayersTable`, which renders).

Example:

>>> print(render(["model", "size"], [["dense", "1,024"]]))
| model | size |
|---|---|
| dense | 1,024 |
>>> print(render(["Layer", "Params"], [["d", "15"]], style="text"))
Layer  Params
-------------
d          15
"""

__all__ = ["render"]

STYLES = ("markdown", "text")


def render(header, rows, style="markdown", footer=(), left_columns=1):
    """A table as one string.

    Args:
        header: the column names.
        rows: sequences of cells (converted with `str`), one per row.
        style: `"markdown"` (a GitHub table) or `"text"` (aligned columns
            under a rule, for a terminal).
        footer: rows set apart at the bottom (a total), under a rule in
            `"text"` style.
        left_columns: in `"text"` style, how many leading columns are
            left-aligned; the rest (numbers) are right-aligned.

    Returns:
        The table, lines joined with newlines, no trailing newline.
    """
    if style not in STYLES:
        raise ValueError(f"Received: style={style!r}. Expected one of "
                         f"{STYLES}.")
    header = [str(cell) for cell in header]
    body = [[str(cell) for cell in row] for row in rows]
    footer = [[str(cell) for cell in row] for row in footer]
    for row in body + footer:
        if len(row) != len(header):
            raise ValueError(f"Received: a row of {len(row)} cells under "
                             f"{len(header)} columns. Expected "
                             f"{len(header)}.")
    if style == "markdown":
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in body + footer]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in [header] + body + footer)
              for i in range(len(header))]

    def line(row):
        return "  ".join(cell.ljust(width) if i < left_columns
                         else cell.rjust(width)
                         for i, (cell, width) in enumerate(zip(row, widths)))

    rule = "-" * len(line(header))
    lines = [line(header), rule] + [line(row) for row in body]
    if footer:
        lines += [rule] + [line(row) for row in footer]
    return "\n".join(lines)
