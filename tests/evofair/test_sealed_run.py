"""The seal (evofair/store/seal.py, evofair/analysis/run_check.py): what decides a run's result —
config.yaml as run, the objectives and directions, the generation count, the checksum table and
front.csv — and the weights files are checked by `verify` (exit 1 naming the damage); `--resume`,
`report` and `export` refuse a damaged run in one line (exit 2); undamaged and older unsealed runs
verify and resume."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

import evofair
from evofair.cli import main
from evofair.store.run_store import DB_NAME

RECIPE = {
    "name": "zdt-sealed",
    "problem": {"name": "zdt1", "args": {"n_var": 4}},
    "algorithm": {"name": "nsga2", "pop_size": 8, "generations": 2},
    "operators": {"crossover": {"name": "sbx"}, "mutation": {"name": "pm"}},
    "seed": 3,
    "hv_ref": [1.1, 1.1],
}


@pytest.fixture(scope="module")
def sealed_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sealed") / "zdt"
    evofair.run(RECIPE, out, progress=False)
    return out


@pytest.fixture(scope="module")
def sealed_checkpoint_run(tmp_path_factory) -> Path:
    """A run whose genomes are weights files (the toy MLP): the damage a file can take."""
    recipe = yaml.safe_load((Path(__file__).resolve().parents[2] / "runs" / "toy.yaml").read_text())
    recipe["algorithm"].update(pop_size=4, generations=1)
    recipe["problem"]["args"] = {"n_train": 64, "n_eval": 32}
    out = tmp_path_factory.mktemp("sealed") / "toy"
    evofair.run(recipe, out, progress=False)
    return out


@pytest.fixture
def run(sealed_run, tmp_path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(sealed_run, dest)
    return dest


@pytest.fixture
def checkpoint_run(sealed_checkpoint_run, tmp_path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(sealed_checkpoint_run, dest)
    return dest


def edit_config(**change: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        config = yaml.safe_load((run / "config.yaml").read_text())
        for edit in change.values():
            edit(config)
        (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    return damage


def sql(*statements: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        con = sqlite3.connect(run / DB_NAME)
        with con:
            for statement in statements:
                con.execute(statement)
        con.close()

    return damage


def flip_direction(run: Path) -> None:
    con = sqlite3.connect(run / DB_NAME)
    with con:
        objectives = json.loads(con.execute("SELECT value FROM meta WHERE key='objectives'").fetchone()[0])
        objectives[0][1] = "max" if objectives[0][1] == "min" else "min"
        con.execute("UPDATE meta SET value=? WHERE key='objectives'", (json.dumps(objectives),))
    con.close()


def delete_last_generation(run: Path) -> None:
    """Every row of the last generation, its checksum included: consistent, as an editor would leave it."""
    con = sqlite3.connect(run / DB_NAME)
    with con:
        (g,) = con.execute("SELECT MAX(generation) FROM generations").fetchone()
        ids = [r[0] for r in con.execute("SELECT id FROM individuals WHERE generation=?", (g,))]
        for (members,) in con.execute("SELECT ids FROM batches WHERE generation=?", (g,)).fetchall():
            ids += json.loads(members)
        con.executemany("DELETE FROM lineage WHERE child=?", [(i,) for i in ids])
        con.executemany("DELETE FROM metrics WHERE individual=?", [(i,) for i in ids])
        con.execute("DELETE FROM batch_metrics WHERE batch IN (SELECT batch FROM batches WHERE generation=?)", (g,))
        for table in ("batches", "individuals", "generations", "checksums"):
            con.execute(f"DELETE FROM {table} WHERE generation=?", (g,))
    con.close()


def drop_front_row(run: Path) -> None:
    lines = (run / "front.csv").read_bytes().splitlines(keepends=True)
    assert len(lines) >= 3, "the fixture's front needs two models"
    (run / "front.csv").write_bytes(b"".join(lines[:-1]))


def front_weights_to_directory(run: Path) -> None:
    """The first front model's weights file replaced by an (empty) directory of the same name."""
    front_id = (run / "front.csv").read_text().splitlines()[1].split(",")[0]
    con = sqlite3.connect(run / DB_NAME)
    (digest,) = con.execute("SELECT weights_hash FROM individuals WHERE id=?", (front_id,)).fetchone()
    con.close()
    (path,) = (run / "weights").rglob(f"{digest}.safetensors")
    path.unlink()
    path.mkdir()


DAMAGE = {
    "config seed": (edit_config(seed=lambda c: c.update(seed=5)), "config.yaml"),
    "config hv_ref": (edit_config(hv=lambda c: c.update(hv_ref=[2.0, 2.0])), "config.yaml"),
    "config operator arg": (
        edit_config(eta=lambda c: c["operators"]["mutation"].setdefault("args", {}).update(eta=3.0)),
        "config.yaml",
    ),
    "objective direction": (flip_direction, "objectives"),
    "deleted last generation": (delete_last_generation, "generations"),
    "dropped checksum table": (sql("DROP TABLE checksums"), "checksums"),
    "edited front.csv": (drop_front_row, "front.csv"),
    "weights file replaced by a directory": (front_weights_to_directory, "not a regular file"),
}
ON_CHECKPOINTS = {"weights file replaced by a directory"}  # the others: on the vector run


def err_lines(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("which", list(DAMAGE))
def test_damage_is_named_by_verify_and_refused_by_every_reader(which, request, tmp_path, capsys):
    """verify: exit 1 naming the damage; --resume, report and export: exit 2, one line naming it
    and pointing at verify, nothing written."""
    run = request.getfixturevalue("checkpoint_run" if which in ON_CHECKPOINTS else "run")
    front_id = (run / "front.csv").read_text().splitlines()[1].split(",")[0]
    damage, word = DAMAGE[which]
    damage(run)
    assert main(["verify", str(run)]) == 1
    problems = [line for line in err_lines(capsys) if not line.startswith("evofair: note:")]
    assert any(word in line for line in problems[:-1]), problems
    readers = {
        "resume": ["run", "--resume", str(run), "--set", "algorithm.generations=3", "--quiet"],
        "report": ["report", str(run), "--out", str(tmp_path / "report.html")],
        "export": ["export", str(run), front_id, "--to", str(tmp_path / "model")],
    }
    for name, argv in readers.items():
        assert main(argv) == 2, name
        lines = err_lines(capsys)
        assert len(lines) == 1 and word in lines[0] and f"evofair verify {run}" in lines[0], (name, lines)
    assert not (tmp_path / "report.html").exists() and not (tmp_path / "model").exists()


def test_an_undamaged_run_verifies_and_resumes_and_stays_sealed(run, capsys):
    assert main(["verify", str(run)]) == 0
    assert main(["run", "--resume", str(run), "--set", "algorithm.generations=3", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["verify", str(run)]) == 0, err_lines(capsys)
    seal = evofair_seal(run)
    assert seal["generations"] == 3 and seal["front_generation"] == 2 and seal["checksums"]


def test_an_older_unsealed_run_verifies_with_a_note_and_resumes(run, capsys):
    sql("DELETE FROM meta WHERE key='seal'")(run)
    assert main(["verify", str(run)]) == 0
    assert any("no seal: written by an older evofair" in line for line in err_lines(capsys))
    assert main(["run", "--resume", str(run), "--set", "algorithm.generations=3", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["verify", str(run)]) == 0  # sealed by the resume
    assert evofair_seal(run)["generations"] == 3


def evofair_seal(run: Path) -> dict:
    con = sqlite3.connect(run / DB_NAME)
    try:
        return json.loads(con.execute("SELECT value FROM meta WHERE key='seal'").fetchone()[0])
    finally:
        con.close()
