"""Text as LaTeX source: what pandas' ``to_latex`` leaves to its caller (pure helpers)."""

from __future__ import annotations

# Characters pdfLaTeX's default font cannot set in text, as math; and a caption's specials
# (pandas escapes the cells, not the caption).
LATEX_SYMBOLS = {"δ": r"$\delta$", "±": r"$\pm$", "α": r"$\alpha$"}
CAPTION_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "#": r"\#", "_": r"\_",
                   "$": r"\$", "{": r"\{", "}": r"\}", "<": "$<$", ">": "$>$", "|": "$|$"}


def latex_symbols(tex: str) -> str:
    """``tex`` with the characters of ``LATEX_SYMBOLS`` set as math."""
    for char, math in LATEX_SYMBOLS.items():
        tex = tex.replace(char, math)
    return tex


def latex_text(text: str) -> str:
    """``text`` as LaTeX source (escaped; its Greek letters and ± still to set as math)."""
    return "".join(CAPTION_ESCAPES.get(char, char) for char in text)
