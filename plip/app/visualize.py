"""Pictures of retrieval results: an HTML page and a PNG contact sheet.

Both show one row per text query with its top-k gallery images, best first; an image of
the query's person gets a green border, any other a red one (no border colour when the
person is unknown, as for a plain folder of images).
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence
from urllib.parse import quote

from PIL import Image, ImageDraw, ImageFont, ImageOps

from ..data.images import load_image

__all__ = [
    "RetrievedImage", "QueryRow", "ContactSheetLayout", "render_retrieval_html", "contact_sheet", "relative_src",
    "rank_label", "LEGEND",
]

HIT_COLOUR = (34, 160, 34)
MISS_COLOUR = (200, 34, 34)
UNKNOWN_COLOUR = (200, 200, 200)


@dataclass(frozen=True)
class RetrievedImage:
    """One gallery image in a query's result list."""

    rank: int  # 1-based
    image_path: str  # where the image can be read now
    score: float
    label: str  # person id or file name, shown under the thumbnail
    correct: bool | None = None  # same person as the query; None: unknown


@dataclass(frozen=True)
class QueryRow:
    """A text query and what it retrieved."""

    text: str
    hits: Sequence[RetrievedImage]
    note: str = ""  # e.g. "narrative caption of person 17"
    extra: dict = field(default_factory=dict)


def _marker(correct: bool | None) -> str:
    return {True: "hit", False: "miss", None: "unknown"}[correct]


def render_retrieval_html(
    rows: Sequence[QueryRow],
    *,
    title: str,
    image_src: Callable[[str], str],
    summary: Sequence[str] = (),
    metrics_table: Sequence[Sequence[str]] = (),
) -> str:
    """A self-contained HTML page of the rows.

    Args:
        rows: the queries and their hits.
        title: page title and heading.
        image_src: maps a hit's ``image_path`` to the ``src`` written in the page (a path
            relative to where the page will live).
        summary: paragraphs shown above the results (plain text).
        metrics_table: a table shown above the results, first row the header (plain text).

    Every thumbnail is a ``<figure class="thumb hit|miss|unknown" data-rank=.. data-correct=..>``
    so that the marks can be read back by a parser.
    """
    parts = [f"<h1>{html.escape(title)}</h1>"]
    parts += [f"<p>{html.escape(p)}</p>" for p in summary]
    if metrics_table:
        head, *body = metrics_table
        cells = "".join(f"<th>{html.escape(c)}</th>" for c in head)
        lines = [f"<tr>{cells}</tr>"]
        for line in body:
            lines.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in line) + "</tr>")
        parts.append(f'<table class="metrics">{"".join(lines)}</table>')
    for number, row in enumerate(rows, 1):
        figures = []
        for hit in row.hits:
            mark = _marker(hit.correct)
            sign = {"hit": " &#10003;", "miss": " &#10007;", "unknown": ""}[mark]
            figures.append(
                f'<figure class="thumb {mark}" data-rank="{hit.rank}" data-correct="{mark}">'
                f'<img src="{html.escape(image_src(hit.image_path))}" alt="{html.escape(hit.label)}" loading="lazy">'
                f"<figcaption>#{hit.rank}{sign} {hit.score:.3f}<br>{html.escape(hit.label)}</figcaption></figure>"
            )
        note = f'<p class="note">{html.escape(row.note)}</p>' if row.note else ""
        parts.append(
            f'<section class="query" data-query="{number}"><h2>{number}. {html.escape(row.text)}</h2>{note}'
            f'<div class="row">{"".join(figures)}</div></section>'
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;margin:1em;max-width:70em} .row{display:flex;gap:8px;flex-wrap:wrap}"
        "figure{margin:0;text-align:center;font-size:11px} img{height:160px;border:4px solid #ccc}"
        ".hit img{border-color:#22a022} .miss img{border-color:#c82222} h2{font-size:15px;margin-bottom:2px}"
        ".note{color:#666;font-size:12px;margin:0 0 4px} table.metrics{border-collapse:collapse}"
        "table.metrics td,table.metrics th{border:1px solid #bbb;padding:2px 8px;text-align:right}"
        "</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )


@dataclass(frozen=True)
class ContactSheetLayout:
    """Geometry of a contact sheet, so that a reader can find each row and thumbnail."""

    rows: int
    columns: int
    thumb_size: tuple[int, int]  # (height, width) of a thumbnail, border excluded
    border: int = 4
    gap: int = 6
    text_width: int = 300
    header_height: int = 44  # title, then the legend
    label_height: int = 26  # two lines under each thumbnail: "#rank score", then the label

    @property
    def cell_width(self) -> int:
        return self.thumb_size[1] + 2 * self.border + self.gap

    @property
    def row_height(self) -> int:
        return self.thumb_size[0] + 2 * self.border + self.label_height + self.gap

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the sheet in pixels."""
        return (self.text_width + self.columns * self.cell_width + self.gap,
                self.header_height + self.rows * self.row_height + self.gap)

    def cell_box(self, row: int, column: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of a bordered thumbnail (0-based row and column)."""
        left = self.text_width + column * self.cell_width
        top = self.header_height + row * self.row_height
        return left, top, left + self.thumb_size[1] + 2 * self.border, top + self.thumb_size[0] + 2 * self.border


LEGEND = ("border: green = the query's person, red = someone else, grey = unknown;  "
          "under each image: #rank and cosine score, then its id")


def rank_label(hit: RetrievedImage) -> str:
    """``#1 0.50``: the rank, then the score with two decimals (never run together with the id,
    which is drawn on its own line)."""
    return f"#{hit.rank} {hit.score:.2f}"


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        return ImageFont.load_default()


def wrap_text(draw: ImageDraw.ImageDraw, text: str, font, width: int, max_lines: int) -> list[str]:
    """Greedy word wrap to ``width`` pixels; more than ``max_lines`` lines end in ``...``."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if draw.textlength(candidate, font=font) <= width or not current:
            current = candidate
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1].rstrip(".,") + " ..."
    return lines


def contact_sheet(
    rows: Sequence[QueryRow],
    *,
    columns: int | None = None,
    thumb_size: tuple[int, int] = (128, 64),
    title: str = "",
) -> tuple[Image.Image, ContactSheetLayout]:
    """Draw the rows as one RGB image: query text on the left, the top-k thumbnails right.

    Returns the image and its :class:`ContactSheetLayout`. Thumbnails keep their aspect
    ratio (padded to ``thumb_size``, given as (height, width)).
    """
    columns = columns if columns is not None else max((len(r.hits) for r in rows), default=0)
    layout = ContactSheetLayout(rows=len(rows), columns=columns, thumb_size=thumb_size)
    sheet = Image.new("RGB", layout.size, "white")
    draw = ImageDraw.Draw(sheet)
    title_font, text_font, small = _font(14), _font(12), _font(10)
    if title:
        draw.text((layout.gap, 6), title, fill="black", font=title_font)
    draw.text((layout.gap, 26), LEGEND, fill=(60, 60, 60), font=small)
    line_height = 14
    max_lines = max(1, (layout.row_height - 2 * layout.gap - line_height) // line_height)
    for r, row in enumerate(rows):
        top = layout.header_height + r * layout.row_height
        y = top + layout.border
        if row.note:
            draw.text((layout.gap, y), row.note, fill=(110, 110, 110), font=small)
            y += line_height
        for line in wrap_text(draw, f"{r + 1}. {row.text}", text_font, layout.text_width - 2 * layout.gap, max_lines):
            draw.text((layout.gap, y), line, fill="black", font=text_font)
            y += line_height
        for c, hit in enumerate(list(row.hits)[:columns]):
            left, box_top, right, bottom = layout.cell_box(r, c)
            colour = {True: HIT_COLOUR, False: MISS_COLOUR, None: UNKNOWN_COLOUR}[hit.correct]
            draw.rectangle((left, box_top, right - 1, bottom - 1), fill=colour)
            image = load_image(hit.image_path, where=f"query {r + 1}, hit {hit.rank}")
            thumb = ImageOps.pad(image, (thumb_size[1], thumb_size[0]), color=(255, 255, 255))
            sheet.paste(thumb, (left + layout.border, box_top + layout.border))
            draw.text((left, bottom + 1), rank_label(hit), fill=(60, 60, 60), font=small)
            label = hit.label
            while len(label) > 4 and draw.textlength(label, font=small) > right - left:
                label = label[:-2] + "~"  # long file names: keep the start
            draw.text((left, bottom + 13), label, fill=(60, 60, 60), font=small)
    return sheet, layout


def relative_src(html_dir: str | os.PathLike) -> Callable[[str], str]:
    """An ``image_src`` for :func:`render_retrieval_html`: URL-quoted paths relative to ``html_dir``
    (a ``#`` or ``?`` in a file name would otherwise cut the link)."""
    base = Path(html_dir).resolve()
    return lambda path: quote(Path(os.path.relpath(Path(path).resolve(), base)).as_posix())
