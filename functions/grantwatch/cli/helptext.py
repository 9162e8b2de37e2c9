"""How `--help` reads: plain text, every paragraph rewrapped to the terminal's width (at most 80 columns)
without breaking a word at its hyphen (`--in-region` stays whole), an option's value named by what it is
(`--key KEY`, `--plan FILE`, `--state [active|dead|ended|all]`) instead of a type tag such as `<str>`, and
each command of a group listed with its first sentence, whole."""

from __future__ import annotations

import inspect
import re
import textwrap
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import typer
from typer._click.formatting import HelpFormatter
from typer.core import TyperArgument, TyperCommand, TyperGroup

Decorated = TypeVar("Decorated", bound=Callable[..., Any])
# Typer's types for help, e.g. `<str>`, `<int range>`, `<list[sns|chat]>`, `<active|dead|ended|all>`.
_TYPE_TAG = re.compile(r"^<(?:list\[)?(?P<inner>.*?)\]?>$")
_FIRST_SENTENCE = re.compile(r"(?P<sentence>.+?[.!?])(?=\s+[A-Z(`]|$)")


def wrap(text: str, width: int, indent: str = "") -> str:
    """Each paragraph (blank lines apart) on lines of at most `width`, breaking only between words."""
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text.strip())]
    wrapper = textwrap.TextWrapper(
        width, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False, break_long_words=False
    )
    return "\n\n".join(wrapper.fill(p) for p in paragraphs if p)


class _Formatter(HelpFormatter):
    """click's layout of help: description, then aligned options and commands; wrapped by `wrap`."""

    def write_text(self, text: str) -> None:
        self.write(wrap(text, self.width, " " * self.current_indent) + "\n")

    def write_dl(self, rows: Sequence[tuple[str, str]], col_max: int = 30, col_spacing: int = 2) -> None:
        rows = list(rows)
        col_max = min(col_max, self.width // 3)  # a narrow terminal keeps two thirds for the descriptions
        first_col = min(max(len(name) for name, _ in rows), col_max) + col_spacing
        margin = " " * (first_col + self.current_indent)
        for name, text in rows:
            self.write(f"{' ' * self.current_indent}{name}")
            if not text:
                self.write("\n")
                continue
            if len(name) <= first_col - col_spacing:
                self.write(" " * (first_col - len(name)))
            else:
                self.write(f"\n{margin}")
            first, *rest = wrap(text, max(self.width - first_col - 2, 10)).splitlines() or [""]
            self.write(f"{first}\n" + "".join(f"{margin}{line}".rstrip() + "\n" for line in rest))


def _help(command: Any, ctx: Any) -> str:
    formatter = _Formatter(width=ctx.terminal_width, max_width=ctx.max_content_width)
    command.format_help(ctx, formatter)
    return str(formatter.getvalue()).rstrip("\n")


def summary(help_text: str | None) -> str:
    """The first sentence of a command's help, on one line: what a group lists the command with."""
    first = inspect.cleandoc(help_text or "").partition("\f")[0].split("\n\n")[0]
    text = " ".join(first.split())
    match = _FIRST_SENTENCE.match(text)
    return match["sentence"] if match else text


def value_name(param: Any, ctx: Any) -> str:
    """What an option's value or an argument is called in help: its declared metavar; its choices as
    `[a|b]`; FILE for a path option; else the option's last word (`--endpoint-url` URL) or the argument's
    name, in capitals."""
    if param.metavar:
        return str(param.metavar)
    tag = _TYPE_TAG.match(param.display_type(ctx) or "")
    inner = tag["inner"] if tag else ""
    if "|" in inner:
        return f"[{inner}]"
    if isinstance(param, TyperArgument):
        return str(param.name).upper() + ("..." if param.nargs != 1 else "")
    if inner.lower() == "path":
        return "FILE"
    longest = max(param.opts, key=len)
    return str(longest.lstrip("-").split("-")[-1].upper())


def _name(param: Any, ctx: Any) -> str:
    if isinstance(param, TyperArgument):
        return value_name(param, ctx)
    names = ", ".join(param.opts) + "".join(f" / {name}" for name in param.secondary_opts)
    return names if param.is_flag or param.count else f"{names} {value_name(param, ctx)}"


def _format_parameters(command: Any, ctx: Any, formatter: Any) -> None:
    arguments: list[tuple[str, str]] = []
    options: list[tuple[str, str]] = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is not None:
            rows = arguments if isinstance(param, TyperArgument) else options
            rows.append((_name(param, ctx), record[1]))
    for title, rows in (("Arguments", arguments), ("Options", options)):
        if rows:
            with formatter.section(title):
                formatter.write_dl(rows)


class HelpCommand(TyperCommand):
    """A command whose help names values as `value_name` does, in its usage line and its options."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = value_name(param, ctx)
                pieces.append(name if param.required else f"[{name}]")
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        _format_parameters(self, ctx, formatter)

    def get_help(self, ctx: Any) -> str:
        return _help(self, ctx)


class HelpGroup(TyperGroup):
    """A command group whose help lists each command with the first sentence of its help, in full."""

    def format_options(self, ctx: Any, formatter: Any) -> None:
        _format_parameters(self, ctx, formatter)
        self.format_commands(ctx, formatter)

    def get_help(self, ctx: Any) -> str:
        return _help(self, ctx)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, summary(command.help)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class HelpTyper(typer.Typer):
    """A Typer app whose help reads as this module says: plain text (no Rich markup), its group a
    `HelpGroup` (or a subclass given as `cls`), every command registered on it a `HelpCommand`."""

    def __init__(self, **settings: Any) -> None:
        settings.setdefault("cls", HelpGroup)
        super().__init__(rich_markup_mode=None, **settings)

    def command(self, *args: Any, **settings: Any) -> Callable[[Decorated], Decorated]:
        settings.setdefault("cls", HelpCommand)
        return super().command(*args, **settings)
