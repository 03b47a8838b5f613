"""runs/biasbios_fair_classification.yaml gives the same numbers as the dedicated `biasbios` problem.

On a slice of the shipped BiasBios file (5 bios per split and gender) with a tiny random BERT (MiniLM's
tokenizer, 2 layers, hidden 32), both recipes shrunk the same way: the same features, labels and
groups, so the same base head, the same initial population, the same local search, the same front.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import tiny_bert

import evofair
from evofair.lifecycle.recipe import load_recipe

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "data" / "biasbios_surgeon_nurse" / "biosbias_surgeon_nurse.jsonl.gz"
SHRINK = {"algorithm": {"pop_size": 4, "generations": 2, "n_offsprings": 4}}


def _slice(path: Path, per_group: int = 5) -> Path:
    """The first `per_group` bios of each (split, gender), in file order."""
    rows, seen = [], {}
    for line in gzip.decompress(DATA.read_bytes()).decode("utf-8").split("\n"):  # not splitlines(): bios contain U+2028
        if line:
            row = json.loads(line)
            key = (row["split"], row["gender"])
            if seen.get(key, 0) < per_group:
                rows.append(row)
            seen[key] = seen.get(key, 0) + 1
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def _recipe(name: str, args: dict) -> dict:
    recipe = load_recipe(REPO / "runs" / name).model_dump(mode="json", by_alias=True)
    recipe["problem"]["args"].update(args)
    recipe["problem"]["args"]["baselines"] = {"enabled": False}
    recipe["algorithm"].update(SHRINK["algorithm"])
    recipe["base_dir"] = None
    return recipe


def test_same_front_as_the_biasbios_problem(tmp_path):
    model = tiny_bert(tmp_path / "tiny_bert")
    data = _slice(tmp_path / "bios.jsonl")
    dedicated = _recipe(
        "fapareto_biasbios.yaml",
        {
            "data_file": str(data),
            "model_dir": str(model),
            "max_length": 32,
            "hidden": [8],
            "cache_dir": str(tmp_path / "cache"),
        },
    )
    generic = _recipe(
        "biasbios_fair_classification.yaml",
        {
            "data": {"path": str(data)},
            "encoder": str(model),
            "model": {"kind": "head", "hidden": [8]},
            "embedding": {"max_length": 32, "cache_dir": str(tmp_path / "cache")},
        },
    )
    a = evofair.run(dedicated, tmp_path / "biasbios", progress=False)
    b = evofair.run(generic, tmp_path / "fair_classification", progress=False)
    front_a = pd.read_csv(tmp_path / "biasbios" / "front.csv")
    front_b = pd.read_csv(tmp_path / "fair_classification" / "front.csv")
    pd.testing.assert_frame_equal(front_a, front_b)
    assert len(a.history) == len(b.history) == 2
    assert list(a.history["hv_val"]) == list(b.history["hv_val"])


@pytest.mark.parametrize("storage", ["dense", "factors"])
def test_lora_genome_gives_the_same_front_as_biasbios_lora(tmp_path, storage):
    """`model.kind: lora` fine-tunes the same adapters as `biasbios` with `genome: lora` (either
    storage): the same initial adapters + head, the same SFT batches, the same front."""
    model = tiny_bert(tmp_path / "tiny_bert")
    data = _slice(tmp_path / "bios.jsonl")
    lora = {"r": 2, "alpha": 4, "top_layers": 1, "targets": ["query", "value"], "storage": storage}
    dedicated = _recipe(
        "fapareto_biasbios_lora.yaml",
        {
            "data_file": str(data),
            "model_dir": str(model),
            "max_length": 32,
            "hidden": [8],
            "cache_dir": str(tmp_path / "cache"),
            "lora": lora,
        },
    )
    generic = _recipe(
        "biasbios_fair_classification.yaml",
        {
            "data": {"path": str(data)},
            "encoder": str(model),
            "model": {"kind": "lora", "hidden": [8]},
            "embedding": {"max_length": 32, "cache_dir": str(tmp_path / "cache")},
            "lora": lora,
            "fair_weight_init": dedicated["problem"]["args"]["fair_weight_init"],
            "torch_threads": None,
        },
    )
    for recipe in (dedicated, generic):  # the LoRA recipe's operators and budget, shrunk
        recipe["operators"] = dedicated["operators"]
        recipe["executor"] = dedicated["executor"]
    a = evofair.run(dedicated, tmp_path / "biasbios", progress=False)
    b = evofair.run(generic, tmp_path / "fair_classification", progress=False)
    front_a = pd.read_csv(tmp_path / "biasbios" / "front.csv")
    front_b = pd.read_csv(tmp_path / "fair_classification" / "front.csv")
    pd.testing.assert_frame_equal(front_a, front_b)
    assert list(a.history["hv_val"]) == list(b.history["hv_val"])
    import yaml

    config = yaml.safe_load((tmp_path / "fair_classification" / "config.yaml").read_text())
    assert config["problem"]["args"]["model"]["kind"] == "lora"


def test_lora_needs_text_only_features():
    from evofair.errors import UserError
    from evofair.problems.fairclass.problem import FairClassification

    with pytest.raises(UserError, match="features: \\[\\]"):
        FairClassification(target="y", sensitive=["g"], text="t", model={"kind": "lora"})
    with pytest.raises(UserError, match="set text"):
        FairClassification(target="y", sensitive=["g"], features=[], model={"kind": "lora"})
