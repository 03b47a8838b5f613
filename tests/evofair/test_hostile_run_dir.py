"""A run directory received from someone else, or edited: evofair must never write outside it,
never overwrite what it did not create, and never execute what it shows.

The oracle is the file system itself: a victim file outside the run keeps its exact bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sqlite3
from pathlib import Path

import pytest
import yaml

import evofair
from evofair.cli import main
from evofair.errors import UserError
from evofair.store.run_store import DB_NAME, RunStore

ROOT = Path(__file__).resolve().parents[2]


def toy_recipe(generations: int = 2) -> dict:
    recipe = yaml.safe_load((ROOT / "runs" / "toy.yaml").read_text())
    recipe["algorithm"].update(pop_size=4, generations=generations)
    recipe["problem"]["args"] = {"n_train": 64, "n_eval": 32}
    return recipe


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hostile") / "toy"
    evofair.run(toy_recipe(), out, progress=False)
    return out


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(finished_run, dest)
    return dest


@pytest.fixture
def victim(tmp_path) -> Path:
    path = tmp_path / "victim.txt"
    path.write_text("precious\n")
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


# -- item 1: `report --out` never overwrites ----------------------------------------------------
def test_report_out_refuses_the_runs_own_database(run_copy, capsys):
    db = run_copy / DB_NAME
    before = sha(db)
    assert main(["report", str(run_copy), "--out", str(db)]) == 2
    assert "exists" in one_error_line(capsys)
    assert sha(db) == before
    assert main(["verify", str(run_copy)]) == 0


def test_report_out_refuses_any_existing_file_and_writes_a_new_one(run_copy, victim, tmp_path, capsys):
    assert main(["report", str(run_copy), "--out", str(victim)]) == 2
    assert str(victim) in one_error_line(capsys)
    assert victim.read_text() == "precious\n"
    new = tmp_path / "new.html"
    assert main(["report", str(run_copy), "--out", str(new)]) == 0
    assert new.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert main(["report", str(run_copy), "--out", str(new)]) == 2  # not even its own earlier output
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "report.html").write_text("mine")
    assert main(["report", str(run_copy), "--out", str(folder)]) == 2
    assert (folder / "report.html").read_text() == "mine"
    capsys.readouterr()


# -- item 2: never write through a planted link ------------------------------------------------
def test_report_ignores_a_planted_temp_link_and_replaces_a_linked_target(run_copy, victim):
    (run_copy / "report.html.tmp").symlink_to(victim)
    assert main(["report", str(run_copy)]) == 0
    assert victim.read_text() == "precious\n"
    (run_copy / "report.html").unlink()
    (run_copy / "report.html").symlink_to(victim)
    assert main(["report", str(run_copy)]) == 0
    assert victim.read_text() == "precious\n"
    assert not (run_copy / "report.html").is_symlink()


def test_resume_refuses_a_linked_lock_in_one_line(run_copy, victim, capsys):
    (run_copy / ".lock").unlink(missing_ok=True)
    (run_copy / ".lock").symlink_to(victim)
    assert main(["run", "--resume", str(run_copy), "--quiet"]) == 2
    assert "symbolic link" in one_error_line(capsys)
    assert victim.read_text() == "precious\n"


def test_resume_never_writes_through_planted_temp_files_or_linked_folders(run_copy, victim, tmp_path, capsys):
    for name in ("config.yaml.tmp", "report.md.tmp", "front.csv.tmp", "history.csv.tmp", "archive.csv.tmp"):
        (run_copy / name).symlink_to(victim)
    assert main(["run", "--resume", str(run_copy), "--quiet"]) == 0
    assert victim.read_text() == "precious\n"
    capsys.readouterr()
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.rmtree(run_copy / "plots")
    (run_copy / "plots").symlink_to(outside)
    assert main(["run", "--resume", str(run_copy), "--quiet"]) == 2
    assert "outside" in one_error_line(capsys)
    assert list(outside.iterdir()) == []


def test_store_refuses_a_linked_database_and_linked_weights_folder(tmp_path, victim):
    run = tmp_path / "run"
    run.mkdir()
    (run / DB_NAME).symlink_to(victim)
    with pytest.raises(UserError, match="symbolic link"):
        RunStore(run)
    assert victim.read_text() == "precious\n"
    (run / DB_NAME).unlink()
    outside = tmp_path / "outside"
    outside.mkdir()
    (run / "weights").symlink_to(outside)
    import torch

    store = RunStore(run)
    try:
        store.put_weights({"w": torch.ones(3)})
        with pytest.raises(UserError, match="outside"):
            store.flush()
    finally:
        store._pending.clear()
        store.close()
    assert list(outside.rglob("*")) == [] or all(p.is_dir() for p in outside.rglob("*"))


# -- item 6: nothing from the run directory is executed in a page ------------------------------
EVIL_ID = "<img src=x onerror=alert(1)>"
EVIL_ID2 = "</script><script>alert(2)</script>"
EVIL_NAME = "</title><script>alert(3)</script>"


def rename_individual(db: Path, old: str, new: str) -> None:
    with sqlite3.connect(db) as con:
        con.execute("UPDATE individuals SET id=? WHERE id=?", (new, old))
        con.execute("UPDATE metrics SET individual=? WHERE individual=?", (new, old))
        con.execute("UPDATE lineage SET child=? WHERE child=?", (new, old))
        con.execute("UPDATE lineage SET parent=? WHERE parent=?", (new, old))
        for gen, pop in con.execute("SELECT generation, population FROM generations").fetchall():
            con.execute(
                "UPDATE generations SET population=? WHERE generation=?",
                (json.dumps([new if i == old else i for i in json.loads(pop)]), gen),
            )
    con.close()


@pytest.fixture
def evil_run(run_copy) -> Path:
    """A finished run whose two front models and run name were edited into HTML/JS payloads, its
    tables, checksums and seal made to match."""
    front = [line.split(",")[0] for line in (run_copy / "front.csv").read_text().splitlines()[1:]]
    assert len(front) >= 1
    with sqlite3.connect(run_copy / DB_NAME) as con:
        others = [r[0] for r in con.execute("SELECT id FROM individuals ORDER BY id") if r[0] not in front]
    con.close()
    renamed = {front[0]: EVIL_ID, front[1] if len(front) > 1 else others[-1]: EVIL_ID2}
    for old, new in renamed.items():
        rename_individual(run_copy / DB_NAME, old, new)
        for table in ("front.csv", "archive.csv"):
            text = (run_copy / table).read_text()
            (run_copy / table).write_text(text.replace(f"{old},", f"{new},"))
    config = yaml.safe_load((run_copy / "config.yaml").read_text())
    config["name"] = EVIL_NAME
    (run_copy / "config.yaml").write_text(yaml.safe_dump(config))
    forge_seal(run_copy)
    return run_copy


def forge_seal(run: Path) -> None:
    """Checksums and seal rewritten to match the edits, as anyone who can write the folder can:
    `verify` and the readers then accept the run, so what it shows must be harmless by itself."""
    from evofair.store.digests import generation_digest
    from evofair.store.seal import read_seal, write_seal

    with sqlite3.connect(run / DB_NAME) as con:
        for (g,) in con.execute("SELECT generation FROM generations").fetchall():
            con.execute("REPLACE INTO checksums(generation, digest) VALUES(?, ?)", (g, generation_digest(con, g)))
        objectives = read_seal(con)["objectives"]
        front_generation = read_seal(con)["front_generation"]
        write_seal(con, (run / "config.yaml").read_bytes(), objectives)
        con.execute(
            "UPDATE meta SET value=json_set(value, '$.front_generation', ?) WHERE key='seal'", (front_generation,)
        )
    con.close()


class _Tags:
    """Start tags and script bodies of a page, as a browser's tokenizer sees them."""

    def __init__(self, page: str):
        from html.parser import HTMLParser

        self.tags, self.scripts = [], []
        outer = self

        class P(HTMLParser):
            def handle_starttag(self, tag, attrs):
                outer.tags.append((tag, dict(attrs)))

            def handle_data(self, data):
                if outer.tags and outer.tags[-1][0] == "script":
                    outer.scripts.append(data)

        P(convert_charrefs=True).feed(page)


def assert_inert(page: str) -> None:
    for payload in (EVIL_ID2, EVIL_NAME):  # both would close the element they sit in
        assert payload not in page
    parsed = _Tags(page)
    assert not any(k.startswith("on") for _, attrs in parsed.tags for k in attrs)
    assert not any(tag == "img" for tag, _ in parsed.tags)
    assert not any(re.search(r"^\s*alert\(", s) for s in parsed.scripts)


def test_static_report_escapes_ids_and_name_and_keeps_its_json_parseable(evil_run, tmp_path):
    out = tmp_path / "evil.html"
    assert main(["report", str(evil_run), "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert_inert(page)
    block = re.search(r"<script type='application/json' id='evofair-data'>(.*?)</script>", page, re.S).group(1)
    assert EVIL_ID in json.loads(block)["front"]


def test_explorer_title_and_page_escape_the_run_name(evil_run):
    from evofair.explorer import create_server

    srv = create_server(evil_run, port=0)
    try:
        client = srv.app.server.test_client()
        page = client.get("/", headers={"Host": f"127.0.0.1:{srv.port}"}).get_data(as_text=True)
    finally:
        srv.stop()
    assert "<title>evofair explorer: &lt;/title&gt;&lt;script&gt;" in page
    assert_inert(page)
