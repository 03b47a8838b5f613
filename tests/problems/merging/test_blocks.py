"""Merge recipes with coefficients per layer block (`problem.args.blocks`).

Oracles: the merge formulas written out here per tensor with the coefficients of the tensor's
block (a weighted average normalised within the block; base plus scaled deltas), and a recipe whose
blocks all carry the same coefficients against the same recipe without blocks.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file
from test_merge_front import TOY, _anchors

from evofair.errors import UserError
from evofair.problems.merging.problem import MergeFront, MergeParams


def _front(folder, method: str, blocks: list[str]) -> MergeFront:
    params = MergeParams(inner={"name": "toy_mlp", "args": TOY}, anchors=_anchors(folder), method=method, blocks=blocks)
    problem = MergeFront(params)
    problem.base_dir = str(folder)
    return problem.ensure_setup()


def _loaded(folder) -> list[dict[str, torch.Tensor]]:
    return [load_file(str(folder / f"anchor{k}.safetensors")) for k in range(3)]


def test_each_block_mixes_its_tensors_with_its_own_coefficients(tmp_path):
    """blocks ["2", "0.weight"]: "2.*" take the first three coefficients, "0.weight" the next three,
    and "0.bias" (named by no prefix) the first block's."""
    ta = _front(tmp_path, "task_arithmetic", ["2", "0.weight"])
    a = _loaded(tmp_path)
    assert ta.n_var == 6 and list(ta.xu) == [1.0] * 6
    x = np.array([0.2, 0.5, 0.3, 0.9, 0.0, 0.4])
    coeffs = {"2.weight": x[:3], "2.bias": x[:3], "0.weight": x[3:], "0.bias": x[:3]}
    merged = ta.weights_of(x)
    assert set(merged) == set(coeffs)
    for name, c in coeffs.items():
        expected = ta.base[name] + sum(ck * (t[name] - ta.base[name]) for ck, t in zip(c, a))
        torch.testing.assert_close(merged[name], expected, atol=1e-6, rtol=0)
    lin = _front(tmp_path, "linear", ["0", "2"])
    merged = lin.weights_of(x)
    for name in a[0]:
        c = x[:3] if name.startswith("0.") else x[3:]
        torch.testing.assert_close(merged[name], sum(ck * t[name] for ck, t in zip(c, a)) / c.sum(), atol=1e-6, rtol=0)


def test_equal_blocks_are_the_whole_model_recipe(tmp_path):
    """The same coefficients in every block give the recipe without blocks."""
    whole = _front(tmp_path, "task_arithmetic", [])
    blocked = _front(tmp_path, "task_arithmetic", ["0", "2"])
    c = np.array([0.3, 0.8, 0.5])
    one, two = whole.weights_of(c), blocked.weights_of(np.concatenate([c, c]))
    for name in one:
        torch.testing.assert_close(two[name], one[name], atol=1e-6, rtol=0)


def test_dare_blocks_rebuild_the_same_weights(tmp_path):
    """DARE's drop masks with blocks (the density gene shared): the same x, the same tensors."""
    dare = _front(tmp_path, "dare_ties", ["0", "2"])
    assert dare.n_var == 7  # three coefficients per block and the density kept
    x = np.array([0.3, 0.8, 0.5, 0.3, 0.8, 0.5, 0.6])
    two, again = dare.weights_of(x), dare.weights_of(x.copy())
    assert all(torch.equal(two[k], again[k]) for k in two)


def test_bad_blocks_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match=r"problem\.args\.blocks\[1\]: '4' names no tensor"):
        _front(tmp_path, "linear", ["0", "4"])
    with pytest.raises(ValidationError, match="blocks: the hybrid schedule refines whole-model recipes"):
        MergeParams(
            inner={"name": "toy_mlp", "args": TOY},
            train_anchors={"scalarisation": "linear", "lambdas": [0, 1]},
            blocks=["0"],
            hybrid={"rounds": 1},
        )
