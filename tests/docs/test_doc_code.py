"""The docs say what runs: their code blocks run as written, their links resolve, their commands parse.

- Every ```python block of README.md and docs/writing-a-problem.md is executed in order, in one
  namespace per page, in an empty temporary working directory (on sys.path, as a script's folder
  is). A block whose first line is `# file: NAME` (python or yaml) is a file the reader saves: it
  is written to NAME instead of executed.
- In docs/writing-a-problem.md every `evofair ...` line of a ```bash block is also run (in
  process, through `evofair.cli.main`) after the blocks above it, and must exit 0.
- Every `evofair ...` command in a ```bash block of README.md and docs/*.md is accepted by the CLI's
  argument parser, and a recipe it names exists (a file in the repository or a packaged name).
- Every relative link in README.md, docs/*.md, benchmarks/README.md and the studies' READMEs points to
  an existing file (and heading).
- README.md stays under 250 lines.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import sys
from pathlib import Path

import pytest

from evofair import cli

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
STUDIES = sorted((ROOT / "studies").glob("**/README.md"))
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(page: Path) -> list[tuple[str, str]]:
    """(language, body) of every fenced block, in order."""
    return FENCE.findall(page.read_text())


def evofair_commands(body: str) -> list[list[str]]:
    """The `evofair ...` command lines of a shell block, as argv lists (comments dropped)."""
    out = []
    for line in body.splitlines():
        for part in line.split("&&"):
            words = shlex.split(part, comments=True)
            if words and words[0] in ("evofair", ".venv/bin/evofair"):
                out.append(words[1:])
    return out


def file_header(body: str) -> str | None:
    first = body.split("\n", 1)[0]
    m = re.fullmatch(r"# file: (\S+)", first.strip())
    return m.group(1) if m else None


def run_page(page: Path, workdir: Path, *, run_commands: bool) -> str:
    """Execute a page's blocks as a reader would; return what they printed."""
    namespace = {"__name__": f"doc_{page.stem.replace('-', '_')}"}
    printed = io.StringIO()
    for lang, body in blocks(page):
        name = file_header(body)
        if name and lang in ("python", "yaml"):
            (workdir / name).write_text(body)
        elif lang == "python":
            with contextlib.redirect_stdout(printed):
                exec(compile(body, f"{page.name}:python", "exec"), namespace)
        elif lang == "bash" and run_commands:
            for argv in evofair_commands(body):
                with contextlib.redirect_stdout(printed):
                    assert cli.main(argv) == 0, f"{page.name}: evofair {' '.join(argv)}"
    return printed.getvalue()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty working directory on sys.path; modules imported from it are forgotten afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):  # cli.main sets these
        monkeypatch.setenv(key, "1")
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if str(getattr(sys.modules[name], "__file__", "") or "").startswith(str(tmp_path)):
            del sys.modules[name]


def test_readme_python_runs_as_written(workdir):
    printed = run_page(README, workdir, run_commands=False)
    out = workdir / "out" / "fair-linear"
    for name in ("config.yaml", "evofair.sqlite", "front.csv", "report.md", "plots/front.png"):
        assert (out / name).exists(), name
    # what the README says it prints: six front models, error 0.216 (gap 0.089) to gap 0.002 (error 0.558)
    lines = printed.strip().splitlines()
    assert len(lines) == 6, printed
    assert "error 0.216  TPR gap 0.089" in lines[0] and "error 0.558  TPR gap 0.002" in lines[-1]
    front_ids = {row.split(",")[0] for row in (out / "front.csv").read_text().splitlines()[1:]}
    assert {line.split()[0] for line in lines} == front_ids


def test_writing_a_problem_runs_as_written(workdir):
    page = ROOT / "docs" / "writing-a-problem.md"
    printed = run_page(page, workdir, run_commands=True)
    assert "20 points on the front, x from -0.00 to 2.01" in printed
    assert "needs Trainable.loss, which problem 'untrainable' does not implement" in printed
    assert not (workdir / "out" / "never-written").exists()
    for run in ("schaffer", "fair-mlp", "fair-mlp-cli"):
        assert (workdir / "out" / run / "front.csv").exists(), run
    # the CLI run used the page's own operators (named by reference) and logged the refiner's losses
    config = (workdir / "out" / "fair-mlp-cli" / "config.yaml").read_text()
    assert "my_operators:sign_flip" in config and "my_problems:FairMLP" in config
    # evofair.load on the Python run, and the CLI resuming that run (its problem rebuilt from config.yaml)
    assert "2 objectives; True ids, one per front row" in printed
    assert "Sequential ['0.bias', '0.weight'] ['generation', 'hv_val', 'n_front']" in printed
    assert len((workdir / "out" / "fair-mlp" / "history.csv").read_text().splitlines()) == 1 + 4


def _recipe_exists(ns) -> bool:
    """A packaged recipe's name, or a file: one under runs/ must exist (others are the reader's own)."""
    recipe = getattr(ns, "recipe", None)
    if recipe is None or getattr(ns, "resume", None):
        return True
    if recipe.endswith((".yaml", ".yml")) or "/" in recipe:
        return not recipe.startswith("runs/") or (ROOT / recipe).exists()
    return recipe in cli.packaged_recipes()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_shell_commands_parse(page, capsys):
    parser = cli.build_parser()
    for lang, body in blocks(page):
        if lang != "bash":
            continue
        for argv in evofair_commands(body):
            try:
                ns = parser.parse_args(argv)
            except SystemExit:
                pytest.fail(f"{page.name}: `evofair {' '.join(argv)}` is not accepted: {capsys.readouterr().err}")
            assert _recipe_exists(ns), f"{page.name}: `evofair {' '.join(argv)}` names no existing recipe"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]{2,}|`", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}


@pytest.mark.parametrize(
    "page", [*PAGES, ROOT / "benchmarks" / "README.md", *STUDIES], ids=lambda p: str(p.relative_to(ROOT))
)
def test_relative_links_resolve(page):
    text = FENCE.sub("", page.read_text())
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):  # http(s):, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.exists(), f"{page.name}: link {target!r} points to no file"
        if anchor and dest.suffix == ".md":
            assert anchor in _anchors(dest), f"{page.name}: link {target!r}: no such heading in {dest.name}"


def test_readme_is_short():
    n = len(README.read_text().splitlines())
    assert n <= 250, f"README.md has {n} lines (at most 250: details belong in docs/)"


def test_no_stale_paths_in_docs():
    """Files that moved in the redesign are named by their new paths."""
    stale = re.compile(
        r"problems/(?!classic|fapareto|fairpo|hyperdpo|<)\w+\.py|tests/test_(?!import_graph\.py)\w+\.py|"
        r"operators/(fairpo|hyperdpo|hyper_prompt|fairpo_losses)\.py|docs/HELPERS\.md"
    )
    for page in [*PAGES, ROOT / "benchmarks" / "README.md", *STUDIES, *sorted((ROOT / "runs").glob("*.yaml"))]:
        found = stale.search(page.read_text())
        assert not found, f"{page.relative_to(ROOT)}: stale path {found.group(0)!r}"
