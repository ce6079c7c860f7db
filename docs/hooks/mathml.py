"""MkDocs hook: renders the pages' TeX as MathML when the site is built, so no math script loads.

``pymdownx.arithmatex`` (generic mode) wraps inline math in ``<span class="arithmatex">\\(...\\)</span>``
and display math in ``<div class="arithmatex">\\[...\\]</div>``; this hook replaces each with the
MathML that ``latex2mathml`` makes of it, which browsers render natively.
"""

from __future__ import annotations

import html
import re
from typing import Any

from latex2mathml.converter import convert

_MATH = re.compile(r'<(span|div) class="arithmatex">\\(\(|\[)(.*?)\\(\)|\])</\1>', re.S)


def _mathml(match: re.Match[str]) -> str:
    tex = html.unescape(match.group(3)).strip()
    display = "block" if match.group(1) == "div" else "inline"
    return f'<{match.group(1)} class="math">{convert(tex, display=display)}</{match.group(1)}>'


def on_page_content(html_text: str, **_: Any) -> str:
    return _MATH.sub(_mathml, html_text)
