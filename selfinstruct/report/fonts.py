"""The one Japanese font of the report: IPAexGothic, shipped by the ``matplotlib-fontja`` wheel.

Charts draw their Japanese glyphs with it, and the page embeds a subset of it, so neither
depends on the fonts of the machine that opens the report: without a CJK system font a
browser would draw every Japanese character as an empty box. The IPA Font License (Article
2, paragraphs 2, 3 and 5) lets a document embed the font, modified or not, and be passed on
freely when the embedded font only renders that document's own text, as here.

The page carries only the glyphs it uses (about 150 bytes a character: some 200 KB for a
Japanese report rather than the whole 6 MB font). It keeps fontTools' default layout
features, not the alternates for vertical text, which a page never sets and which would
double the size. The format is WOFF: zlib-compressed, read by every browser, and made with
nothing beyond fontTools (WOFF2 would need the brotli module).
"""

from __future__ import annotations

import base64
import importlib.util
import io
from dataclasses import dataclass
from functools import cache
from pathlib import Path

# Printable ASCII is always in the subset: entities such as &amp; stand for characters the
# page's markup does not spell out, and a machine with no font at all can still read it.
_ASCII = frozenset(chr(code) for code in range(0x20, 0x7F))


@cache
def bundled_cjk_font() -> Path | None:
    """IPAexGothic's file inside the matplotlib-fontja package, found without importing it
    (its import registers the font with pyplot's global state, which the report avoids)."""
    spec = importlib.util.find_spec("matplotlib_fontja")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(spec.submodule_search_locations[0]) / "fonts" / "ipaexg.ttf"


@dataclass(frozen=True)
class EmbeddedFont:
    """A font subset ready for a CSS ``@font-face`` data URI."""

    mime: str
    format: str
    data: str  # base64


def embedded_subset(text: str) -> EmbeddedFont | None:
    """The bundled font cut down to the glyphs `text` needs; None without the font.

    Characters the font lacks are left out (the browser falls back for them as usual). The
    output is deterministic: the font's timestamps are kept, so an unchanged report is
    byte-identical when built again.
    """
    path = bundled_cjk_font()
    if path is None:
        return None
    from fontTools import subset

    options = subset.Options()
    options.flavor = "woff"
    options.hinting = False  # screen hinting instructions are most of a TrueType glyph's size
    font = subset.load_font(str(path), options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=sorted({ord(char) for char in set(text) | _ASCII}))
    subsetter.subset(font)
    buffer = io.BytesIO()
    subset.save_font(font, buffer, options)
    return EmbeddedFont("font/woff", "woff", base64.b64encode(buffer.getvalue()).decode("ascii"))
