"""The one exception family of kanpiler.

In: nothing. Out: ``KanpilerError`` and its subclasses, raised by every stage. Stage: errors,
the first (it imports nothing of kanpiler).
Every error names what is wrong and where; user input is never checked with ``assert``.
"""

from __future__ import annotations


class KanpilerError(Exception):
    """Root of every error kanpiler raises on purpose."""


class FormulaSyntaxError(KanpilerError, ValueError):
    """Formula text that does not parse.

    Carries ``line`` and ``column`` (1-based), the offending ``text`` (the whole formula),
    a short ``reason`` and an optional ``hint``. ``str(err)`` shows the line with a caret
    under the offending character.
    """

    def __init__(
        self,
        reason: str,
        text: str = "",
        line: int = 1,
        column: int = 1,
        hint: str | None = None,
    ) -> None:
        self.reason = reason
        self.text = text
        self.line = line
        self.column = column
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        lines = self.text.splitlines() or [""]
        src = lines[self.line - 1] if 0 < self.line <= len(lines) else ""
        col = max(self.column, 1)
        # keep very long lines readable: show a window around the column
        start = max(0, col - 60)
        snippet = src[start : start + 120]
        prefix = "..." if start > 0 else ""
        suffix = "..." if start + 120 < len(src) else ""
        caret = " " * (len(prefix) + col - 1 - start) + "^"
        msg = f"{self.reason} at line {self.line}, column {col}\n  {prefix}{snippet}{suffix}\n  {caret}"
        if self.hint:
            msg += f"\nhint: {self.hint}"
        return msg


class UnknownFunctionError(FormulaSyntaxError):
    """A call of a name the function library does not hold."""


class UnsupportedError(KanpilerError, NotImplementedError):
    """A construct that a stage cannot handle exactly (names the construct and the stage)."""


class CompileError(KanpilerError):
    """The compiler cannot build an exact network for a formula."""


class VerifyError(KanpilerError):
    """An invariant between stages is broken; names the stage, the item and the rule."""

    def __init__(self, stage: str, rule: str, where: str = "") -> None:
        self.stage, self.rule, self.where = stage, rule, where
        loc = f" at {where}" if where else ""
        super().__init__(f"[{stage}] rule '{rule}' broken{loc}")


class ShapeError(KanpilerError, ValueError):
    """An input tensor of the wrong shape, dtype or device."""


class ConfigError(KanpilerError, ValueError):
    """A bad option or argument (an unknown optimizer, a negative learning rate, a bad thread
    count, an object of the wrong kind); names the option, the value and what is accepted."""


class DomainError(KanpilerError, ValueError):
    """Inputs outside a model's domain (``log`` of a negative number, ``1/x`` at 0, ...) in a
    checked evaluation; names how many points, the first of them and the domain."""


class FitError(KanpilerError):
    """A numerical solve or training step failed (e.g. a least-squares system)."""


class CheckpointError(KanpilerError):
    """A saved model that is missing, truncated, tampered with or of an unknown version."""


class RenderError(KanpilerError):
    """A diagram cannot be drawn (e.g. Graphviz's ``dot`` is not installed)."""


__all__ = [
    "KanpilerError",
    "FormulaSyntaxError",
    "UnknownFunctionError",
    "UnsupportedError",
    "CompileError",
    "VerifyError",
    "ShapeError",
    "ConfigError",
    "DomainError",
    "FitError",
    "CheckpointError",
    "RenderError",
]
