"""A small model of CloudWatch's SEARCH expression, as its documentation ("CloudWatch search expression
syntax") describes it, to tell which metrics a dashboard's expression finds.

- `SEARCH(' {Namespace,DimensionName,...} SearchTerm ', 'Statistic', Period)`. The schema in braces is
  optional: with it, only metrics of that namespace with exactly those dimension names match.
- A search term is a value, alone or with a specifier (`MetricName=`, `Namespace=`, a dimension name `=`).
  A term with no specifier may match the namespace, the metric name, a dimension name or a dimension value.
- A value in double quotes is an exact match: the whole value, case included. Unquoted, a partial match:
  CloudWatch splits names into tokens (at punctuation, and where camel case changes, so `CPUUtilization`
  is `CPU` and `Utilization`), and the term matches when its tokens appear, in order and adjacent, among
  the value's, regardless of case. (The model is, if anything, stricter than CloudWatch: a term it finds is
  found there too.)
- Terms side by side must all match (an implicit AND); `AND`, `OR`, `NOT` and parentheses combine them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

SEARCH = re.compile(
    r"SEARCH\(\s*'(?P<query>(?:[^'\\]|\\.)*)'\s*,\s*'(?P<statistic>[^']+)'(?:\s*,\s*(?P<period>\d+))?\s*\)"
)


@dataclass(frozen=True)
class Metric:
    namespace: str
    name: str
    dimensions: dict[str, str] = field(default_factory=dict)

    def key(self) -> tuple[str, str, tuple[tuple[str, str], ...]]:
        return self.namespace, self.name, tuple(sorted(self.dimensions.items()))


def tokens(value: str) -> list[str]:
    """A name's tokens: split at anything not a letter or digit, then where camel case changes."""
    found: list[str] = []
    for part in re.split(r"[^A-Za-z0-9]+", value):
        found += re.findall(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+", part)
    return [t.lower() for t in found if t]


def _partial(term: str, value: str) -> bool:
    wanted, have = tokens(term), tokens(value)
    if not wanted:
        return False
    return any(have[i : i + len(wanted)] == wanted for i in range(len(have) - len(wanted) + 1))


Predicate = Callable[[Metric], bool]


def _term(specifier: str | None, value: str, quoted: bool) -> Predicate:
    def matches(candidate: str) -> bool:
        return candidate == value if quoted else _partial(value, candidate)

    def predicate(metric: Metric) -> bool:
        if specifier is None:
            fields = [metric.namespace, metric.name, *metric.dimensions, *metric.dimensions.values()]
        elif specifier == "MetricName":
            fields = [metric.name]
        elif specifier == "Namespace":
            fields = [metric.namespace]
        else:
            fields = [metric.dimensions[specifier]] if specifier in metric.dimensions else []
        return any(matches(f) for f in fields)

    return predicate


LEXEME = re.compile(
    r'\s*(?:(?P<paren>[()])|(?P<spec>[A-Za-z0-9_.:/-]+)=|"(?P<quoted>[^"]*)"|(?P<word>[^\s()"]+))'
)


class SearchSyntaxError(ValueError):
    pass


@dataclass
class _Parser:
    lexemes: list[tuple[str, str]]
    position: int = 0

    def peek(self) -> tuple[str, str] | None:
        return self.lexemes[self.position] if self.position < len(self.lexemes) else None

    def take(self) -> tuple[str, str]:
        lexeme = self.lexemes[self.position]
        self.position += 1
        return lexeme

    def expression(self, specifier: str | None = None) -> Predicate:
        alternatives = [self.conjunction(specifier)]
        while self.peek() == ("word", "OR"):
            self.take()
            alternatives.append(self.conjunction(specifier))
        return lambda m: any(a(m) for a in alternatives)

    def conjunction(self, specifier: str | None) -> Predicate:
        parts = [self.negation(specifier)]
        while (lexeme := self.peek()) is not None and lexeme not in {("word", "OR"), ("paren", ")")}:
            if lexeme == ("word", "AND"):
                self.take()
            parts.append(self.negation(specifier))
        return lambda m: all(p(m) for p in parts)

    def negation(self, specifier: str | None) -> Predicate:
        if self.peek() == ("word", "NOT"):
            self.take()
            inner = self.negation(specifier)
            return lambda m: not inner(m)
        return self.atom(specifier)

    def atom(self, specifier: str | None) -> Predicate:
        kind, text = self.take()
        if kind == "paren" and text == "(":
            inner = self.expression(specifier)
            if self.take() != ("paren", ")"):
                raise SearchSyntaxError("unbalanced parentheses")
            return inner
        if kind == "spec":
            if specifier is not None:
                raise SearchSyntaxError(f"a specifier inside {specifier}=")
            return self.atom(text)
        if kind in {"quoted", "word"}:
            return _term(specifier, text, quoted=kind == "quoted")
        raise SearchSyntaxError(f"unexpected {text!r}")


@dataclass(frozen=True)
class Search:
    namespace: str | None
    dimension_names: frozenset[str] | None
    predicate: Predicate
    statistic: str
    period: int | None

    def finds(self, metrics: list[Metric]) -> list[Metric]:
        return [m for m in metrics if self._schema(m) and self.predicate(m)]

    def _schema(self, metric: Metric) -> bool:
        if self.namespace is None:
            return True
        return metric.namespace == self.namespace and frozenset(metric.dimensions) == self.dimension_names


def parse(expression: str) -> Search:
    match = SEARCH.fullmatch(expression.strip())
    if match is None:
        raise SearchSyntaxError(f"not a SEARCH expression: {expression}")
    query = match.group("query").strip()
    namespace: str | None = None
    dimension_names: frozenset[str] | None = None
    schema = re.match(r"\{([^}]*)\}", query)
    if schema:
        names = [n.strip().strip('"') for n in schema.group(1).split(",")]
        namespace, dimension_names = names[0], frozenset(names[1:])
        query = query[schema.end() :]
    lexemes: list[tuple[str, str]] = []
    position = 0
    while query[position:].strip():
        lexeme = LEXEME.match(query, position)
        if lexeme is None:
            raise SearchSyntaxError(f"cannot read {query[position:]!r}")
        kind = lexeme.lastgroup
        assert kind is not None
        lexemes.append((kind, lexeme.group(kind)))
        position = lexeme.end()
    if not lexemes and namespace is None:
        raise SearchSyntaxError("a search needs a schema or a search term")
    parser = _Parser(lexemes)
    predicate: Predicate = parser.expression() if lexemes else (lambda m: True)
    if parser.peek() is not None:
        raise SearchSyntaxError(f"unexpected {parser.peek()}")
    period = match.group("period")
    return Search(
        namespace, dimension_names, predicate, match.group("statistic"), int(period) if period else None
    )
