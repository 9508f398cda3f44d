"""The README is a front door and the documents behind it stay true to the repository: the
README is short, its tables are narrow and its first lines are the two commands; every link in
README.md and docs/*.md resolves to a file (and heading) of the repository; the parameter table
in docs/node.md is the one scripts/gen_parameter_table.py generates from ``PARAMETERS``; the
layer table is written only in docs/ARCHITECTURE.md; figures live only in the model card and
BENCHMARKS.md."""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import pytest

from dudes_ros.ros.params import PARAMETERS
from tests.conftest import REPO

README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
MAX_README_LINES = 250
MAX_CELL = 300
COMMANDS = ("bash scripts/setup.sh && .venv/bin/dudes demo",
            "bash scripts/setup.sh && .venv/bin/python -m pytest")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
# Repository paths named in code spans: checked when they hold no placeholder (<...>, *, ...)
REPO_PATH = re.compile(r"^(?:benchmarks|config|docs|dudes_ros|engines|launch|scripts|tests)/"
                       r"[\w./-]*$")


def prose(text: str) -> str:
    """``text`` without fenced code blocks (their lines become empty, so numbers still match)."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            out.append("")
            continue
        out.append("" if fenced else line)
    return "\n".join(out)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, code marks and punctuation dropped, each space
    a hyphen."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of ``path``'s headings (a repeated heading gets -1, -2, ...)."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose(path.read_text()).splitlines():
        match = re.match(r"#{1,6}\s+(.*)", line)
        if not match:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[str]:
    """The link targets in ``path``'s prose (code spans and blocks excluded)."""
    text = re.sub(r"`[^`\n]*`", "", prose(path.read_text()))
    return LINK.findall(text)


def table_cells(text: str) -> list[str]:
    """Every cell of every Markdown table row outside code blocks (``\\|`` is not a break)."""
    return [cell.strip() for line in prose(text).splitlines() if line.lstrip().startswith("|")
            for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


# --- the README as a front door -------------------------------------------------------------

def test_readme_is_short():
    lines = README.read_text().count("\n")
    assert lines < MAX_README_LINES, f"README.md has {lines} lines; keep it under " \
        f"{MAX_README_LINES} and move details into docs/"


def test_readme_table_cells_are_short():
    long = [cell[:80] + "..." for cell in table_cells(README.read_text()) if len(cell) > MAX_CELL]
    assert not long, f"README table cells over {MAX_CELL} characters: {long}"


def test_readme_starts_with_the_two_commands():
    """CI runs the first two lines of the README's first code block as they are."""
    block = re.search(r"```bash\n(.*?)```", README.read_text(), re.S)
    assert block, "README.md has no bash block"
    lines = block.group(1).splitlines()
    assert [line.split("#")[0].strip() for line in lines[:2]] == list(COMMANDS), lines[:2]
    assert README.read_text().index("```bash") < README.read_text().index("\n## "), \
        "the two commands come before the first section"


def test_readme_links_only_inside_the_repository():
    outside = [target for target in links(README) if re.match(r"[a-z][a-z0-9+.-]*:", target)]
    assert not outside, f"README.md links outside the repository: {outside}"


# --- links and paths resolve -------------------------------------------------------------------

@pytest.mark.parametrize("doc", [README, *DOCS], ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(doc: Path):
    broken = []
    for target in links(doc):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue  # an absolute URL (docs may cite upstream projects)
        file, _, anchor = target.partition("#")
        dest = (doc.parent / file).resolve() if file else doc
        if REPO.resolve() not in [dest, *dest.parents] or not dest.exists():
            broken.append(f"{target}: no such file in the repository")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(REPO.resolve())}")
    assert not broken, f"{doc.relative_to(REPO)}: " + "; ".join(broken)


@pytest.mark.parametrize("doc", [README, *DOCS], ids=lambda p: str(p.relative_to(REPO)))
def test_named_files_exist(doc: Path):
    """Repository paths in code spans, and the repository's documents named anywhere
    (UPPER_CASE.md), exist: nothing points readers to a file they do not have."""
    text = doc.read_text()
    spans = {s.rstrip("/") for s in re.findall(r"`([^`\n]+)`", text) if REPO_PATH.match(s)}
    documents = set(re.findall(r"\b((?:[\w-]+/)*[A-Z][A-Z_]*\.md)\b", text))
    missing = sorted(name for name in spans | documents
                     if not (REPO / name).exists() and not (doc.parent / name).exists())
    assert not missing, f"{doc.relative_to(REPO)} names files the repository lacks: {missing}"


README_SECTION = re.compile(r'README(?: section)?,? \\?"([^"\\\n]+)')


def test_sections_the_code_names_are_in_the_readme():
    """Messages and docstrings that send users to a README section (the synthetic-model
    warning, the Fast DDS hint) name a heading the README has."""
    headings = [re.sub(r"^#+\s+", "", line).replace("`", "")
                for line in prose(README.read_text()).splitlines() if line.startswith("#")]
    sources = [*(REPO / "dudes_ros").rglob("*.py"), *(REPO / "launch").glob("*.py")]
    named = {(str(path.relative_to(REPO)), match.group(1).strip())
             for path in sources for match in README_SECTION.finditer(path.read_text())}
    missing = sorted((path, name) for path, name in named
                     if not any(h.startswith(name) for h in headings))
    assert named and not missing, f"README sections named in the code but absent: {missing}"


# --- the parameter table is the declarations ---------------------------------------------------

def _generator():
    spec = importlib.util.spec_from_file_location(
        "gen_parameter_table", REPO / "scripts" / "gen_parameter_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_parameter_table_is_up_to_date():
    generator = _generator()
    doc = generator.DOC.read_text()
    assert generator.render(doc) == doc, ("docs/node.md's parameter table differs from "
                                          "dudes_ros/ros/params.py PARAMETERS: run python "
                                          "scripts/gen_parameter_table.py")


def test_parameter_table_holds_every_parameter_as_declared():
    """Read back from the document, independently of the generator: every declared parameter,
    in order, with its type, default, run-time flag and description."""
    generator = _generator()
    table = generator.DOC.read_text().split(generator.BEGIN, 1)[1].split(generator.END, 1)[0]
    rows = [[cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
            for line in table.strip().splitlines()[2:]]
    assert [row[0].strip("`") for row in rows] == [spec.name for spec in PARAMETERS]
    for (name, type_name, default, runtime, meaning), spec in zip(rows, PARAMETERS, strict=True):
        assert type_name == spec.type_name, name
        shown = default.strip("`").strip('"')
        if isinstance(spec.default, float) and math.isnan(spec.default):
            assert shown == ".nan", name
        elif isinstance(spec.default, bool):
            assert shown == str(spec.default).lower(), name
        else:
            assert shown == str(spec.default), name
        assert runtime == ("yes" if spec.runtime else "no"), name
        assert re.sub(r"\\(.)", r"\1", meaning) == spec.description, name


# --- written once ------------------------------------------------------------------------------

LAYER_ROW = re.compile(r"^\s*\|?\s*(apps|ros|offline|messages|core|runtime|base)\s*(\||\s{2,})"
                       r".*(cli|ros/|bag/|messages/|perception|runtime/|labels)", re.M)


def test_layer_table_is_written_only_in_the_architecture_document():
    others = [README, *(d for d in DOCS if d.name != "ARCHITECTURE.md"),
              REPO / "dudes_ros" / "__init__.py"]
    copies = [str(p.relative_to(REPO)) for p in others if LAYER_ROW.search(p.read_text())]
    assert not copies, f"the layer table is copied into {copies}; link docs/ARCHITECTURE.md"
    assert len(LAYER_ROW.findall((REPO / "docs" / "ARCHITECTURE.md").read_text())) == 7


FIGURES = {
    "latency": re.compile(r"\b\d+(\.\d+)?\s?ms\b"),
    "mIoU": re.compile(r"mIoU[^|\n.;]{0,12}\d"),
    "correlation r": re.compile(r"\br\s?=\s?0\.\d"),
    "rise delay": re.compile(r"\d+\s?-\s?\d+ frames|median \d"),
}


@pytest.mark.parametrize("doc", [README, *DOCS], ids=lambda p: str(p.relative_to(REPO)))
def test_figures_live_in_the_model_card_and_benchmarks(doc: Path):
    """Measured figures are stated once, in engines/MODEL_CARD.md or BENCHMARKS.md; the
    README and the documents link there instead of quoting them."""
    text = prose(doc.read_text())
    found = {kind: match.group(0) for kind, pattern in FIGURES.items()
             if (match := pattern.search(text))}
    assert not found, f"{doc.relative_to(REPO)} quotes figures {found}; link the model card " \
        "or BENCHMARKS.md instead"
