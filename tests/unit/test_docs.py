"""The README and docs/*.md against the code (issue 17): every module, function, class, setting, metric and
option they name exists; every setting the code reads is documented exactly once; the README stays a front
door that links every page. Each failure says what to add or fix, and where.

What counts as a name (outside fenced code blocks, in `backticks`):
- a path whose first folder is one of the repository's (`store/db.py`, `deploy/k8s/`, globs allowed) or a
  bare module file (`iem.py`): it must exist; a segment in capitals (`NAME.py`) is a placeholder;
- `Class.attribute` of a class defined in our code: the attribute is defined in that class's file;
  `module.function` of one of our modules: defined in a module of that name (`iem.lock_subscribers`);
- `CamelCase` (two capitals or more): a class or name defined in our code;
- `snake_case` (with an underscore): the word occurs in our code, SQL or deploy files (column, field,
  reason and function names all do);
- `…_name` (a name shortened after `pmtabounce_`): `pmtabounce_name` occurs in our code, as above;
- `pmtabounce COMMAND [SUBCOMMAND] [--option]`: the installed `pmtabounce` command has that command and
  each option (click's own definitions); any other `--option`: it occurs in our code or the Makefile;
- `PMTABOUNCE_*` anywhere in the text, fenced blocks included: a setting `Settings.from_env` knows, a prefix
  of one, a `PMTABOUNCE_TEST_*` variable the test suite reads, or a misspelling the page shows as refused.

"Documented" means: one Markdown table row in docs/configuration.md whose first cell is exactly the
variable in backticks (`| `PMTABOUNCE_BATCH_SIZE` | ...`); no other page has such a row.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import click
import pytest
from pmtabounce.common.config import Settings, known_names
from pmtabounce.common.errors import ConfigError

from pmtabounce.cli import main as pmtabounce_command

pmtabounce_command.every_command()  # each command's module is imported when asked for: here all of them

TREE = Path(__file__).resolve().parents[2]
README = TREE / "README.md"
CONFIGURATION = TREE / "docs" / "configuration.md"
README_MAX_LINES = 250
CODE_FOLDERS = ("common", "store", "worker", "producer", "pmtabounce", "bench", "tests")
OTHER_FOLDERS = ("deploy", "docs", ".ci")
DATA_SUFFIXES = (".sql", ".yaml", ".yml", ".json", ".service", ".timer", ".env")  # table and column names too
# Misspellings a page shows on purpose, as examples of what the settings refuse (checked to be refused).
REFUSED_EXAMPLES = frozenset({"PMTABOUNCE_BATCHSIZE"})
# Names of MariaDB's own that the pages quote; nothing of ours.
SERVERS_OWN = frozenset({"n_rows", "innodb_buffer_pool_size"})
CELL_MAX = 300  # characters in one table cell: longer explanations go in a paragraph under the table

FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
SPAN = re.compile(r"`([^`\n]+)`")
VARIABLE = re.compile(r"PMTABOUNCE_[A-Z0-9_]*")
CAMEL = re.compile(r"[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+")
SNAKE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+")
DOTTED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\.([a-z_][a-z0-9_]*)(?:\(.*\))?")
LABELS = re.compile(r"\{[a-z,]*\}$")
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]+")
PLACEHOLDER = re.compile(r"\b[A-Z]{2,}\b")
LINK = re.compile(r"\]\(([^)\s]+)\)")
ROW = re.compile(r"^\|\s*`(PMTABOUNCE_[A-Z0-9_]+)`\s*\|", re.M)


def pages() -> list[Path]:
    return [README, *sorted((TREE / "docs").glob("*.md"))]


def name(page: Path) -> str:
    return str(page.relative_to(TREE))


def spans(page: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of every `backticked` span outside fenced code blocks."""
    text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), page.read_text())
    for number, line in enumerate(text.splitlines(), 1):
        for match in SPAN.finditer(line):
            yield number, match.group(1).strip()


@cache
def code_files() -> tuple[Path, ...]:
    found = [p for folder in CODE_FOLDERS for p in (TREE / folder).rglob("*.py")]
    found += [p for folder in (*CODE_FOLDERS, "deploy") for p in (TREE / folder).rglob("*")
              if p.is_file() and p.suffix in DATA_SUFFIXES]
    this = Path(__file__).resolve()  # its own fabricated examples must not count as code
    return tuple(p for p in found if "__pycache__" not in p.parts and p != this)


@cache
def code_text() -> str:
    return "\n".join(p.read_text(errors="replace") for p in code_files()) + (TREE / "Makefile").read_text()


@cache
def module_files(stem: str) -> tuple[Path, ...]:
    return tuple(p for p in code_files() if p.suffix == ".py" and p.stem == stem and "tests" not in p.parts)


def defines(text: str, identifier: str) -> bool:
    """A def, class, assignment or annotated field (dataclass, NamedTuple) of `identifier` in `text`."""
    pattern = rf"^\s*(?:(?:async\s+)?def|class)\s+{identifier}\b|^\s*{identifier}\s*(?::[^=\n]*)?=|^\s+{identifier}\s*:"
    return re.search(pattern, text, re.M) is not None


@cache
def class_file(identifier: str) -> Path | None:
    for path in code_files():
        if path.suffix == ".py" and re.search(rf"^\s*class\s+{identifier}\b", path.read_text(), re.M):
            return path
    return None


def unknown_path(token: str) -> str | None:
    """Why `token`, a path of ours, is wrong; None when it exists (or is not a path of ours)."""
    token = token.rstrip(".,;:")
    first = token.split("/", 1)[0]
    if "/" in token and first in CODE_FOLDERS + OTHER_FOLDERS:
        if PLACEHOLDER.search(token):
            return None
        if any(c in token for c in "*?["):
            return None if list(TREE.glob(token)) else f"no file matches {token}"
        return None if (TREE / token).exists() else f"{token} does not exist"
    if re.fullmatch(r"[a-z_][a-z0-9_]*\.py", token):
        stem = token[:-3]
        return None if any(p.stem == stem for p in code_files()) else f"no module {token} in {', '.join(CODE_FOLDERS)}"
    return None


def unknown_name(span: str) -> list[str]:
    """What is wrong with the code names in one backticked span (empty: nothing)."""
    problems = [why for token in span.split() if (why := unknown_path(token))]
    if span.startswith("pmtabounce "):
        return problems + unknown_command(span.split()[1:])
    problems += [f"option {option} occurs nowhere in our code" for option in OPTION.findall(span)
                 if span.startswith("--") and not option_in_code(option)]
    if " " in span or "/" in span or "=" in span or span.endswith(".py"):
        return problems
    bare = LABELS.sub("", span.removesuffix("()")).replace("…_", "pmtabounce_")
    dotted = DOTTED.fullmatch(bare)
    if dotted:
        return problems + unknown_attribute(*dotted.groups())
    if CAMEL.fullmatch(bare) and not re.search(rf"^\s*(?:class\s+{bare}\b|{bare}\s*[:=])", code_text(), re.M):
        problems.append(f"no class or name {bare} is defined in our code")
    elif SNAKE.fullmatch(bare) and bare not in SERVERS_OWN and not re.search(rf"\b{bare}\b", code_text()):
        problems.append(f"{bare} occurs nowhere in our code, SQL or deploy files")
    return problems


def unknown_attribute(owner: str, attribute: str) -> list[str]:
    """`Class.attribute` of our class, `module.attribute` of our module; another's (pika's) is not checked."""
    where = class_file(owner) if owner[0].isupper() else None
    if where is not None:
        return [] if defines(where.read_text(), attribute) else [
            f"{owner} (in {where.relative_to(TREE)}) defines no {attribute}"]
    if CAMEL.fullmatch(owner):
        return [f"no class {owner} in our code"]
    modules = module_files(owner)
    if modules and not any(defines(p.read_text(), attribute) for p in modules):
        return [f"no {attribute} in {', '.join(str(p.relative_to(TREE)) for p in modules)}"]
    return []


def unknown_command(words: list[str]) -> list[str]:
    """`pmtabounce setup [--no-database] ...`: the command (and subcommand) exist and have each option.
    `dlq list/show/...` names several subcommands; an option must belong to one of them."""
    commands: list[click.Command] = [pmtabounce_command]
    path = "pmtabounce"
    for word in words:
        if word.startswith(("-", "[")) or not isinstance(commands[0], click.Group):
            break
        group = commands[0]
        found = [group.commands.get(part) for part in word.split("/")]
        if not all(found):
            return [f"{path} has no command {word}"] if word.islower() and word.isalpha() or "/" in word else []
        commands, path = [c for c in found if c], f"{path} {word}"
    options = {o for c in commands for p in c.params for o in (*p.opts, *p.secondary_opts)}
    return [f"{path} has no option {option}" for option in OPTION.findall(" ".join(words)) if option not in options]


def option_in_code(option: str) -> bool:
    """The option's string in our code, or made there by an f-string (bench's `f"--scale-{name}"`)."""
    if f'"{option}"' in code_text() or option in (TREE / "Makefile").read_text():
        return True
    head, _, rest = option.rpartition("-")
    return f'"{head}-{{' in code_text() and re.search(rf"\b{rest}\b", code_text()) is not None


def code_settings() -> set[str]:
    """Every PMTABOUNCE_* variable the settings read (common/config.py: known_names and the file's own)."""
    names = {f"PMTABOUNCE_{n.upper()}" for n in known_names()} | {"PMTABOUNCE_CONFIG"}
    for variable in names:  # PMTABOUNCE_CONFIG is named in config.py's check, not in known_names: prove it
        assert not refused(variable), f"{variable} is refused by Settings.from_env"
    return names


def refused(variable: str) -> bool:
    """Whether Settings.from_env refuses `variable` as an unknown name (the code's own list, asked)."""
    try:
        Settings.from_env({variable: ""})
    except ConfigError as exc:
        return "unknown variable" in str(exc)
    return False


def test_every_name_the_pages_use_in_backticks_exists_in_the_code():
    problems = [f"{name(page)}:{line}: `{span}`: {why}"
                for page in pages() for line, span in spans(page) for why in unknown_name(span)]
    assert not problems, ("names in the docs that the code does not have; fix the page (or the name) at:\n"
                          + "\n".join(problems))


def test_every_pmtabounce_variable_the_pages_name_is_one_the_code_knows():
    settings, tests = code_settings(), set(VARIABLE.findall(code_text()))
    problems = []
    for page in pages():
        for number, line in enumerate(page.read_text().splitlines(), 1):
            for variable in VARIABLE.findall(line):
                prefix = variable.endswith("_")
                if variable in settings or (prefix and any(s.startswith(variable) for s in settings | tests)):
                    continue
                if variable.startswith("PMTABOUNCE_TEST_") and variable in tests:
                    continue
                if variable in REFUSED_EXAMPLES:
                    assert refused(variable), f"{variable} is shown as refused but Settings.from_env accepts it"
                    continue
                problems.append(f"{name(page)}:{number}: {variable} is no setting of common/config.py Settings: "
                                "fix the name, or add the setting (a field of Settings) with its row in "
                                "docs/configuration.md")
    assert not problems, "\n".join(problems)


def test_every_setting_the_code_reads_has_exactly_one_row_in_configuration_md():
    rows: dict[str, list[str]] = {}
    for page in pages():
        for match in ROW.finditer(page.read_text()):
            rows.setdefault(match.group(1), []).append(name(page))
    problems = []
    for variable in sorted(code_settings()):
        where = rows.get(variable, [])
        if where != [name(CONFIGURATION)]:
            problems.append(
                f"{variable}: " + (f"rows in {', '.join(where)}; keep exactly one, in docs/configuration.md"
                                   if where else "no row in docs/configuration.md: add "
                                   f"'| `{variable}` | default | meaning |' to the table of its section"))
    problems += [f"{variable}: a row in {', '.join(where)}, but common/config.py has no such setting"
                 for variable, where in rows.items() if variable not in code_settings()]
    assert not problems, "\n".join(problems)


def test_the_readme_is_a_front_door_that_links_every_docs_page():
    lines = README.read_text().splitlines()
    assert len(lines) < README_MAX_LINES, (
        f"README.md has {len(lines)} lines, the front door stays under {README_MAX_LINES}: move the detail to "
        "the docs/ page of its audience and link it")
    linked = {target.split("#")[0] for target in LINK.findall(README.read_text())}
    missing = [page for page in sorted((TREE / "docs").glob("*.md")) if name(page) not in linked]
    assert not missing, "\n".join(
        f"{name(page)} is not linked from README.md: add '- [docs/{page.name}](docs/{page.name}) — who it "
        "is for' to its 'Read next' list" for page in missing)


def heading_anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    text = FENCE.sub("", page.read_text())
    titles = re.findall(r"^#{1,6}\s+(.*?)\s*$", text, re.M)
    return {re.sub(r"[^\w\- ]", "", title.lower().replace("`", "")).replace(" ", "-") for title in titles}


def test_every_link_between_the_pages_reaches_a_file_and_a_heading():
    problems = []
    for page in pages():
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                problems.append(f"{name(page)}: link to {target}: no file {path}")
            elif anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked):
                problems.append(f"{name(page)}: link to {target}: {linked.name} has no heading with anchor #{anchor}")
    assert not problems, "\n".join(problems)


def test_no_table_cell_is_an_essay():
    problems = [f"{name(page)}:{number}: a table cell of {len(cell.strip())} characters (at most {CELL_MAX}): "
                "put the detail in a paragraph under the table"
                for page in pages() for number, line in enumerate(page.read_text().splitlines(), 1)
                if line.startswith("|") for cell in line.split(" | ") if len(cell.strip()) > CELL_MAX]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("span", [
    "store/nowhere.py", "nowhere.py", "plan_batches", "GuardBatch.trips", "BounceArchiver", "iem.unbounce_everyone",
    "--give-up-never", "pmtabounce_bounces_total", "…_bounces_total{role}", "pmtabounce bouncez",
    "pmtabounce process [DIR] --give-up-never", "pmtabounce dlq list/shove",
])
def test_a_fabricated_name_is_caught(span):
    assert unknown_name(span)


@pytest.mark.parametrize("span", [
    "common/config.py", "config.py", "plan_batch", "Settings.from_env", "AccountingFile", "ledger.history",
    "--give-up-after", "pmtabounce_records_read_total{role}", "…_pending_files", "pmtabounce dlq list/show",
    "pmtabounce process [DIR] [--json] [--give-up-after S]", "tests/unit/test_dlq_*.py", "pmtabounce/commands/NAME.py",
])
def test_a_real_name_passes(span):
    assert unknown_name(span) == []
