"""The README is a door and docs/ is the house behind it: the README stays short, every page under docs/ is
linked from it, no relative link in the README or docs/ points to a file that does not exist, the commands it
shows are evalkit's own (with flags they take), and every dependency has its line. .ci/run reads its two
commands from the README's first two fenced code blocks, so those are checked with .ci/run's own reader.
"""

from __future__ import annotations

import itertools
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"
README_MAX_LINES = 220  # the "at most about 200 lines", with a little room for a sentence or two
SCREENSHOT_MAX_BYTES = 300_000  # a picture for the README, not a page's weight: a modest window's PNG
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")  # [text](target) and ![alt](target), inline links only


def pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def link_targets(page: Path) -> list[tuple[str, str]]:
    """(file, anchor) of the page's inline links within this repository (no scheme); file is "" for an anchor
    of the page itself, anchor "" when there is none. Code blocks are left out: a link there is not a link."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    targets = [m.group(1) for m in LINK.finditer(text)]
    return [tuple((t + "#").split("#")[:2]) for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


def relative_links(page: Path) -> list[str]:
    """The files the page links to, relative to the page."""
    return [file for file, _ in link_targets(page) if file]


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the page's headings: lower case, punctuation but - and _ dropped, spaces as -."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    headings = re.findall(r"^#{1,6} +(.+?) *$", text, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def fenced_blocks(text: str) -> list[str]:
    return re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)


def test_the_readme_is_short():
    lines = README.read_text().count("\n")
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines, more than {README_MAX_LINES}: it is a door, put the topic's text on "
        f"its page under docs/ and link it")


@pytest.mark.parametrize("page", [README, *pages()], ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_points_to_a_file(page):
    missing = [t for t in relative_links(page) if not (page.parent / t).exists()]
    assert not missing, f"{page.relative_to(REPO)} links to files that do not exist: {missing}"


@pytest.mark.parametrize("page", [README, *pages()], ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_anchor_of_a_page_link_is_a_heading_there(page):
    wrong = [f"{file}#{anchor}" for file, anchor in link_targets(page)
             if anchor and (file == "" or file.endswith(".md")) and (page.parent / file).is_file()
             and anchor not in anchors(page.parent / file if file else page)]
    assert not wrong, f"{page.relative_to(REPO)} links to headings that do not exist (renamed?): {wrong}"


def test_the_link_checker_sees_a_missing_file(tmp_path):
    """The checker itself: a page with one good link, one broken one, an anchor, a URL and a link inside a
    code block reports exactly the broken one."""
    (tmp_path / "there.md").write_text("x\n")
    page = tmp_path / "page.md"
    page.write_text("[a](there.md#part) [b](gone.md) [c](#local) [d](https://example.org/x.md)\n"
                    "```\n[e](also_gone.md)\n```\n![f](img/gone.png)\n")
    assert [t for t in relative_links(page) if not (tmp_path / t).exists()] == ["gone.md", "img/gone.png"]


def test_anchors_are_githubs(tmp_path):
    """GitHub's anchors, worked by hand: punctuation dropped, each space a hyphen; a code block's # is no heading."""
    page = tmp_path / "p.md"
    page.write_text("# Memory of long runs (issue 23; 2-core VM)\n## `evalkit run` --help\n```\n# not a heading\n```\n")
    assert anchors(page) == {"memory-of-long-runs-issue-23-2-core-vm", "evalkit-run---help"}


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(REPO / t).resolve() for t in relative_links(README)}
    unlinked = [p.name for p in pages() if p.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link to (add one line each under 'Where to read on'): {unlinked}"


def test_the_readme_shows_the_report_picture():
    pictures = [t for t in relative_links(README) if t.endswith(".png")]
    assert pictures, "the README shows no picture of the report"
    for picture in pictures:
        data = (REPO / picture).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{picture} is not a PNG"
        assert len(data) < SCREENSHOT_MAX_BYTES, f"{picture} is {len(data)} bytes"


def ci_block(n: int) -> str:
    """The Nth fenced code block of README.md as .ci/run reads it: its own block() function, run by bash."""
    ci = (REPO / ".ci" / "run").read_text()
    function = re.search(r"^block\(\) \{.*?^\}$", ci, flags=re.S | re.M)
    assert function, ".ci/run no longer has its block() function: update this test to read the README as it does"
    script = function.group(0) + f"\nblock {n}\n"
    return subprocess.run(["bash", "-c", script], cwd=REPO, capture_output=True, text=True, check=True).stdout


def test_ci_reads_the_install_and_demo_command_then_the_test_command():
    install, tests = ci_block(1).strip(), ci_block(2).strip()
    assert install.splitlines() == [install] and "pip install -e" in install and install.endswith("evalkit demo")
    assert tests.splitlines() == [tests] and "pip install -e" in tests and "python -m pytest" in tests
    assert (install, tests) == tuple(b.strip() for b in fenced_blocks(README.read_text())[:2])


def evalkit_command_lines() -> list[list[str]]:
    """Every `evalkit ...` command of the README's code blocks, continuation lines joined, as words; a command
    inside `$(...)` counts, and what follows a pipe does not."""
    commands = []
    for block in fenced_blocks(README.read_text()):
        for line in block.replace("\\\n", " ").splitlines():
            for found in re.finditer(r"(?:^|\$\()\s*(evalkit\s[^|)#]*)", line):
                commands.append(shlex.split(found.group(1)))
    return commands


def test_the_readmes_evalkit_commands_exist_and_take_the_flags_shown():
    """Each `evalkit SUBCOMMAND` the README shows is a real subcommand, and each --flag it uses appears in that
    subcommand's --help (so a renamed command or flag fails here, not in a user's terminal)."""
    commands = evalkit_command_lines()
    assert any(c[1:3] == ["model", "check"] for c in commands), "the five commands for your own model are gone"
    for words in commands:
        sub = list(itertools.takewhile(lambda w: not w.startswith("-") and not re.search(r"[./$]", w), words[1:]))
        shown = subprocess.run([sys.executable, "-m", "evalkit", *sub, "--help"], capture_output=True, text=True,
                               cwd=REPO)
        assert shown.returncode == 0, f"`evalkit {' '.join(sub)}` is not a command: {shown.stderr.strip()}"
        for flag in (w.split("=")[0] for w in words if w.startswith("--")):
            assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", shown.stdout), f"`evalkit {' '.join(sub)}` has no {flag} (README: {' '.join(words)})"


def test_every_dependency_has_its_line_in_the_readme():
    """pyproject's dependencies, the extras' too, each named in the README's table of why."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib is Python 3.11's; pyproject is read with it")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted += extra
    names = {re.match(r"[A-Za-z0-9_.-]+", w).group(0).lower() for w in wanted}
    table = README.read_text().split("## Dependencies", 1)
    assert len(table) == 2, "the README has no '## Dependencies' section"
    rows = {line.split("|")[1].lower() for line in table[1].splitlines() if line.startswith("| ")}
    missing = sorted(n for n in names if not any(re.search(rf"(^|[\s,]){re.escape(n)}([\s,]|$)", r) for r in rows))
    assert not missing, f"dependencies the README does not say why it has: {missing}"
