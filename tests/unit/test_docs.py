"""The docs name only what exists: CLI commands and options, template parameters, outputs and resources,
repository paths, and the files and headings their links point to."""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import typer.main

from grantwatch.cli import app
from tests.support.capabilities import code_blocks
from tests.support.templates import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ("template.yaml", "member/forwarder.yaml", "forwarders/iam-role-events.yaml")
# Made by running things, never in the repository: paths under them are examples of output.
GENERATED = {".venv", ".tools", ".grantwatch", ".aws-sam", "build", "node_modules"}
# CamelCase names the docs quote that are AWS's (API calls, errors, condition keys, properties), not ours.
AWS_NAMES = {
    "AccessDenied", "AccessDeniedException", "AfterContext", "AssumeRole", "AssumedRole", "BatchGetItem",
    "CancelKeyDeletion", "CausingEntity", "ChangeSource", "CloudTrail", "CreateFunction", "CreateGrant",
    "CreateRole", "DelaySeconds", "DeleteFunction", "DeleteRole", "DescribeKey", "DisableKey",
    "DisabledException", "DynamoDBLocal", "EnableKey", "ExecRole", "GetAtt", "GetFunctionConfiguration",
    "GetItem", "GetRole", "GetSecretValue", "GrantIsForAWSResource", "HealsFailed", "HealsSkipped",
    "HomePageUrl", "InvalidStateException", "KmsKeyArn", "LastUpdateStatus", "LeadingKeys", "ListAccounts",
    "ListFunctions", "ListGrants", "ListKeys", "ListTags", "MaximumConcurrency", "NotFoundException",
    "PassRole", "PassedToService", "PrincipalArn", "PrincipalOrgID", "PutEvents", "PutKeyPolicy",
    "ResourceAttribute", "ResourceTag", "RetireGrant", "ReturnConsumedCapacity", "RevisionId",
    "RevokeGrant", "RoleName", "ScheduleKeyDeletion", "SendMessage", "SendMessageBatch", "ServerlessRepo",
    "SourceCodeUrl", "StringEqualsIgnoreCase", "TransactWriteItems", "UpdateFunctionConfiguration",
    "UpdateItem", "ViaService", "PutItem", "Query", "BatchWriteItem", "Scan",
    "ChannelDeliveryAbandoned", "ChannelDeliveryFailed",  # the evaluator's and remediation's metrics
    "InvalidAccessException", "ResourceNotFoundException",  # what a channel answers when it cannot take one
    "State", "Status", "String", "StringList", "GetParameter",
    "GetParametersByPath", "SecureString", "ScheduleV2",
    "MessageStructure",  # SNS Publish: a message per protocol
    "CanaryHeartbeat",  # the recorder's metric of the canary's calls
    "MemberHeartbeatsStale",  # the organization fan-out's count of member account-regions not heard
    "IsLogging",  # CloudTrail GetTrailStatus
    # the read APIs that say which resources are on a key, and the fields and errors they answer with
    "ListTables", "DescribeTable", "DescribeDBInstances", "DescribeDBClusters", "DescribeVolumes",
    "SSEDescription", "InaccessibleEncryptionDateTime", "TableStatus", "ArchivalSummary", "KmsKeyId",
    "DBInstanceStatus", "UnauthorizedOperation",
}  # fmt: skip
# Options of other tools (the AWS CLI, pytest) that the docs quote on their own.
OTHER_TOOLS_OPTIONS = {"--config-env", "--include-property-values", "--kms-key-arn", "--role", "--dist"}

CODE_SPAN = re.compile(r"`([^`\n]+)`")
CAMEL_CASE = re.compile(r"\b[A-Z][a-z]+(?:[A-Z][A-Za-z0-9]*)+\b")
PARAMETER_VALUE = re.compile(r"(?<![\w.$-])([A-Z][A-Za-z0-9]+)=")
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
INVOCATION = re.compile(r"(?:^|[\s($])grantwatch((?:\s+[a-z][a-z-]*)+)")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*$", re.MULTILINE)
FILE_NAME = re.compile(r"(?<![\w./-])((?:[\w.-]+/)*[\w-]+\.(?:py|yaml|yml|json|md|sh|toml|txt))(?![\w/])")
DIRECTORY = re.compile(r"(?<![\w./:<-])((?:[\w.-]+/)+)(?![\w.…<*-])")


@dataclass(frozen=True)
class Doc:
    path: Path
    text: str

    @property
    def name(self) -> str:
        return str(self.path.relative_to(ROOT))

    def code_blocks(self) -> Iterator[list[str]]:
        return code_blocks(self.text)

    def spans(self) -> list[str]:
        prose = re.sub(r"^```.*?^```", "", self.text, flags=re.MULTILINE | re.DOTALL)
        return CODE_SPAN.findall(prose)

    def quoted(self) -> Iterator[str]:
        """What the doc quotes as code: its spans and its code blocks' lines."""
        yield from self.spans()
        for block in self.code_blocks():
            yield from block


def docs_of(root: Path) -> list[Doc]:
    paths = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    return [Doc(path, path.read_text(encoding="utf-8")) for path in paths]


DOCS = docs_of(ROOT)


# --- the CLI -----------------------------------------------------------------------------------------------


@cache
def cli() -> Any:
    return typer.main.get_command(app)


def subcommands(command: Any) -> dict[str, Any]:
    return dict(getattr(command, "commands", None) or {})


def options_of(command: Any) -> set[str]:
    return {
        name
        for param in command.params
        if param.param_type_name == "option"
        for name in [*param.opts, *param.secondary_opts]
    }


def every_option(command: Any) -> set[str]:
    return options_of(command).union(*(every_option(sub) for sub in subcommands(command).values()))


def cli_mistakes(doc: Doc, root_command: Any) -> list[str]:
    """Each `grantwatch …` the doc quotes must name a command, and each option on it one of that command's
    (or of a command offered beside it as `a | b`). Options quoted alone must exist on some command."""
    mistakes = []
    for words, rest, where in invocations(doc):
        command, path = root_command, ["grantwatch"]
        words = list(words)
        while words and words[0] in subcommands(command):
            path.append(words[0])
            command = subcommands(command)[words.pop(0)]
        if not path[1:] or (words and subcommands(command)):
            mistakes.append(f"{doc.name}: no command `{' '.join([*path, *words[:1]])}` ({where})")
            continue
        siblings = [command, *_alternatives(root_command, path, rest)]
        known = set().union(*(options_of(candidate) for candidate in siblings))
        mistakes += [
            f"{doc.name}: `{' '.join(path)}` has no option {option} ({where})"
            for option in OPTION.findall(" ".join(words) + " " + rest)
            if option not in known
        ]
    everywhere = every_option(root_command) | OTHER_TOOLS_OPTIONS
    for span in doc.spans():
        if span.startswith("--"):
            option = OPTION.match(span)
            if option and option.group() not in everywhere:
                mistakes.append(f"{doc.name}: no command has the option {option.group()} (`{span}`)")
        else:
            mistakes += _span_on_a_command(doc, span, root_command)
    return mistakes


def invocations(doc: Doc) -> Iterator[tuple[list[str], str, str]]:
    """(command words, the rest of the line, the line) for each `grantwatch …` in spans and code blocks; an
    indented code line beginning with `[` or `|` continues the invocation above it."""
    for span in doc.spans():
        yield from _invocation(span)
    for block in doc.code_blocks():
        last: list[str] | None = None
        for line in block:
            if last is not None and re.match(r"\s+[\[|]", line):
                yield last, _before_comment(line), line.strip()
                continue
            if re.match(r"\s+#", line):
                continue
            found = list(_invocation(line))
            last = found[-1][0] if found else None
            yield from found


def _invocation(line: str) -> Iterator[tuple[list[str], str, str]]:
    for match in INVOCATION.finditer(line):
        words = match.group(1).split()
        rest = _before_comment(line[match.end() :]).split("&&")[0]
        yield words, rest, line.strip()


def _before_comment(line: str) -> str:
    return line.split(" #")[0]


def _alternatives(root_command: Any, path: list[str], rest: str) -> list[Any]:
    parent = root_command
    for word in path[1:-1]:
        parent = subcommands(parent)[word]
    return [
        subcommands(parent)[word]
        for word in re.findall(r"\|\s*([a-z][a-z-]*)", rest)
        if word in subcommands(parent)
    ]


def _span_on_a_command(doc: Doc, span: str, root_command: Any) -> list[str]:
    """A span such as `grants --state` or `backfill --region` names a command's option."""
    first, _, rest = span.partition(" ")
    command = subcommands(root_command).get(first)
    if command is None or not rest.startswith("--"):
        return []
    return [
        f"{doc.name}: `grantwatch {first}` has no option {option} (`{span}`)"
        for option in OPTION.findall(rest)
        if option not in options_of(command)
    ]


# --- the templates -----------------------------------------------------------------------------------------


@cache
def template_names(root: Path) -> tuple[set[str], set[str]]:
    """(every parameter, output, resource and condition of the three templates; their parameters)."""
    names: set[str] = set()
    parameters: set[str] = set()
    for path in TEMPLATES:
        template = load_template(root / path)
        parameters |= set(template.get("Parameters", {}))
        for section in ("Parameters", "Outputs", "Resources", "Conditions"):
            names |= set(template.get(section, {}))
    return names, parameters


def code_names(root: Path) -> set[str]:
    """The classes the package defines: the docs may name them too."""
    return {
        node.name
        for module in (root / "functions" / "grantwatch").rglob("*.py")
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef)
    }


CODE_NAMES = code_names(ROOT)


def template_mistakes(doc: Doc, names: set[str], parameters: set[str]) -> list[str]:
    mistakes = []
    for span in doc.spans():
        for name in CAMEL_CASE.findall(span):
            if name not in names and name not in AWS_NAMES and name not in CODE_NAMES:
                mistakes.append(
                    f"{doc.name}: `{name}` is no parameter, output or resource of {', '.join(TEMPLATES)},"
                    " nor a class of the package (if it is AWS's, add it to AWS_NAMES)"
                )
    for quoted in doc.quoted():
        for name in PARAMETER_VALUE.findall(quoted):
            if name not in parameters and name not in AWS_NAMES:
                mistakes.append(f"{doc.name}: `{name}=` sets no parameter of the templates")
    return mistakes


# --- paths and links ---------------------------------------------------------------------------------------


def repository_paths(root: Path) -> set[str]:
    """Every file and folder (with a trailing /) of the repository, relative to it; nothing generated."""
    paths: set[str] = set()
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [name for name in subfolders if name not in GENERATED and name != ".git"]
        relative = Path(folder).relative_to(root).as_posix()
        prefix = "" if relative == "." else relative + "/"
        paths |= {prefix + name + "/" for name in subfolders} | {prefix + name for name in files}
    return paths


def path_mistakes(doc: Doc, root: Path, known: set[str]) -> list[str]:
    """A path whose first part is a top-level entry of the repository must exist as written. One named
    from further down (`domain/risk.py`, `unit/`, `iam_contract.py`) must exist somewhere; a bare `.json`
    name is an example of the reader's own file, and a name in capitals a placeholder."""
    top = {entry.name for entry in root.iterdir()} - GENERATED
    mistakes = []
    for quoted in doc.quoted():
        for name in [*FILE_NAME.findall(quoted), *DIRECTORY.findall(quoted)]:
            if name.split("/")[0] in top:
                found = (root / name).exists()
            elif name.split("/")[0] in GENERATED or name.endswith(".json") or name != name.lower():
                continue
            else:
                found = any(path == name or path.endswith("/" + name) for path in known)
            if not found:
                mistakes.append(f"{doc.name}: no {name} in the repository")
    return mistakes


REPOSITORY_PATHS = repository_paths(ROOT)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def link_mistakes(doc: Doc) -> list[str]:
    mistakes = []
    for target in LINK.findall(doc.text):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        resolved = (doc.path.parent / file).resolve() if file else doc.path
        if not resolved.exists():
            mistakes.append(f"{doc.name}: the link {target} leads to no file")
        elif anchor and resolved.suffix == ".md":
            anchors = {slug(heading) for heading in HEADING.findall(resolved.read_text(encoding="utf-8"))}
            if anchor not in anchors:
                mistakes.append(f"{doc.name}: the link {target} leads to no heading of {resolved.name}")
    return mistakes


# --- the tests ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: doc.name)
def test_every_command_and_option_the_docs_name_exists(doc: Doc) -> None:
    assert cli_mistakes(doc, cli()) == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: doc.name)
def test_every_template_parameter_output_and_resource_the_docs_name_exists(doc: Doc) -> None:
    assert template_mistakes(doc, *template_names(ROOT)) == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: doc.name)
def test_every_path_the_docs_name_exists(doc: Doc) -> None:
    assert path_mistakes(doc, ROOT, REPOSITORY_PATHS) == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: doc.name)
def test_every_link_leads_to_a_file_and_heading(doc: Doc) -> None:
    assert link_mistakes(doc) == []


def test_every_doc_is_reached_from_the_readme() -> None:
    reached = {DOCS[0].path}
    frontier = [DOCS[0]]
    while frontier:
        doc = frontier.pop()
        for target in LINK.findall(doc.text):
            resolved = (doc.path.parent / target.partition("#")[0]).resolve()
            if resolved.suffix == ".md" and resolved.exists() and resolved not in reached:
                reached.add(resolved)
                frontier.append(Doc(resolved, resolved.read_text(encoding="utf-8")))
    assert sorted(str(doc.path.relative_to(ROOT)) for doc in DOCS if doc.path not in reached) == []
