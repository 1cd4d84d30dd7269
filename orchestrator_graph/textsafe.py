"""Text as data: what users, data files and models wrote, made unable to act as structure.

- In prompts, every value is fenced (``fence``): a ``<`` that could open or close a tag becomes
  ``&lt;``, so ``</request><skills>…`` or a forged ``<result task=…>`` stays text inside its
  block. Blocks the code itself builds (``block``) are ``Block`` strings and placed as they are.
- In Markdown output, a cell, heading or line (``md_cell``, ``md_line``) cannot add a row, a
  column or a heading, and HTML in it is escaped, so ``<script>`` shows as text."""

from __future__ import annotations

import html
import re

_TAG_START = re.compile(r"<(?=[/!?A-Za-z])")


class Block(str):
    """Prompt text built by the code around fenced data; ``prompts.render`` places it as is."""


def fence(text: object) -> str:
    return text if isinstance(text, Block) else _TAG_START.sub("&lt;", str(text))


def block(tag: str, body: object, **attributes: str) -> Block:
    attrs = "".join(f' {k}="{html.escape(str(v), quote=True)}"' for k, v in attributes.items())
    return Block(f"<{tag}{attrs}>\n{fence(body)}\n</{tag}>")


def join(blocks: list[Block], separator: str = "\n") -> Block:
    return Block(separator.join(blocks))


def md_line(text: object) -> str:
    """One line of Markdown text with its HTML escaped (line breaks become spaces)."""
    return html.escape(" ".join(str("" if text is None else text).split()), quote=False)


def md_cell(text: object) -> str:
    """A table cell: one line, HTML escaped, ``|`` escaped so it cannot end the cell."""
    return md_line(text).replace("|", "\\|")
