"""A tabular model as one portable file: the fitted preprocessing and the evolved MLP in an sklearn
`Pipeline`, saved with skops (no pickle), loadable where evofair is not installed.

The evolved head is a torch MLP (`layers.k.weight/bias`, ReLU between layers) predicting the class
of the largest logit. `MLPClassifier` with `activation="relu"` computes the same hidden layers
from `coefs_` (the transposed weights) and `intercepts_`. Its output layer differs for two classes:
one logistic unit, class 1 when the unit's input is > 0. So the two logits become their
difference (logit of `classes_[1]` minus logit of `classes_[0]`), which is > 0 exactly when
argmax picks `classes_[1]`. sklearn sorts `classes_`, so the rows of the last layer are permuted
from the problem's class order into sorted order. The run evaluates float32 features in float64;
`to_float32` (a `FunctionTransformer` over numpy's own `float32`) rounds the pipeline's features
the same way, so its predictions are the run's.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.compose import ColumnTransformer
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, LabelBinarizer

MODEL_FILE = "model.skops"
SKOPS_VERSION_NOTE = "skops.io (safe format, no pickle)"


def mlp_classifier(weights: Mapping[str, torch.Tensor], class_names: Sequence[str]) -> MLPClassifier:
    """An `MLPClassifier` whose predictions are those of the torch head `weights`."""
    n_layers = len([k for k in weights if k.startswith("layers.") and k.endswith(".weight")])
    Ws = [weights[f"layers.{k}.weight"].detach().double().numpy() for k in range(n_layers)]
    bs = [weights[f"layers.{k}.bias"].detach().double().numpy() for k in range(n_layers)]
    names = [str(c) for c in class_names]
    order = np.argsort(np.array(names, dtype=object), kind="stable")  # sklearn's sorted classes_
    W_out, b_out = Ws[-1][order], bs[-1][order]
    if len(names) == 2:
        W_out, b_out = W_out[1:] - W_out[:1], b_out[1:] - b_out[:1]
    Ws[-1], bs[-1] = W_out, b_out
    clf = MLPClassifier(hidden_layer_sizes=tuple(W.shape[0] for W in Ws[:-1]), activation="relu")
    clf.coefs_ = [W.T.copy() for W in Ws]
    clf.intercepts_ = [b.copy() for b in bs]
    clf.n_layers_ = n_layers + 1
    clf.n_outputs_ = int(W_out.shape[0])
    clf.out_activation_ = "logistic" if len(names) == 2 else "softmax"
    clf.n_features_in_ = int(Ws[0].shape[1])
    clf._label_binarizer = LabelBinarizer().fit(np.array(names, dtype=object))
    clf.classes_ = clf._label_binarizer.classes_
    clf.n_iter_ = 0
    clf.t_ = 0
    return clf


def pipeline(
    transformer: ColumnTransformer, weights: Mapping[str, torch.Tensor], class_names: Sequence[str]
) -> Pipeline:
    """Preprocessing (the run's fitted ColumnTransformer), float32 rounding, the MLP."""
    return Pipeline(
        [
            ("features", copy.deepcopy(transformer)),
            ("to_float32", FunctionTransformer(np.float32)),
            ("mlp", mlp_classifier(weights, class_names)),
        ]
    )


def write_pipeline(model: Pipeline, path: Path) -> Path:
    import skops.io as sio

    target = Path(path) / MODEL_FILE
    sio.dump(model, target)
    return target


def categories(transformer: ColumnTransformer) -> dict[str, list[str]]:
    """Each categorical input's known values (others are encoded as all zeros)."""
    if "categorical" not in transformer.named_transformers_:
        return {}
    step = transformer.named_transformers_["categorical"]
    columns = next(cols for name, _, cols in transformer.transformers_ if name == "categorical")
    encoder = step.steps[-1][1]
    return {c: [str(v) for v in cats] for c, cats in zip(columns, encoder.categories_)}


def loading_snippet(read_line: str) -> str:
    """Five lines that load the file and predict the test split, with nothing but pandas and skops."""
    return "\n".join(
        [
            "import json, pandas as pd, skops.io as sio",
            f'model = sio.load("{MODEL_FILE}", trusted=sio.get_untrusted_types(file="{MODEL_FILE}"))',
            f"table = {read_line}  # then add the columns data.derive adds, if `features` lists one",
            'test = table.iloc[json.load(open("splits.json"))["rows"]["test"]]',
            "predicted = model.predict(test)  # the target's values, as text",
        ]
    )


def read_line(data: Mapping[str, Any] | None, fmt: str | None, na_values: Sequence[str]) -> str:
    """The pandas call that reads the table as the run read it (CSV: the same missing-value cells)."""
    name = Path(str((data or {}).get("path") or "DATA.csv")).name
    lowered = name.lower()
    if fmt == "csv" or (fmt is None and (".csv" in lowered or ".tsv" in lowered)):
        sep = ', sep="\\t"' if ".tsv" in lowered else ""
        return f'pd.read_csv("{name}"{sep}, na_values={list(na_values)!r}, skipinitialspace=True, low_memory=False)'
    if fmt == "parquet" or lowered.endswith((".parquet", ".pq")):
        return f'pd.read_parquet("{name}")'
    if fmt == "jsonl" or lowered.endswith((".jsonl", ".ndjson", ".jsonl.gz")):
        return f'pd.read_json("{name}", lines=True, dtype=False)'
    return f'pd.read_json("{name}")  # a datasets folder: datasets.load_from_disk(...).to_pandas()'


def readme_section(info: Mapping[str, Any], classes: Sequence[str], snippet: str) -> str:
    """The export README's part for people: inputs, categories, classes, the split, how to load."""
    feats = info.get("features") or {}
    lines = [
        "## Use it without evofair",
        "",
        f"`{MODEL_FILE}` is one sklearn Pipeline (preprocessing fitted on the training split + the evolved MLP), "
        f"saved with {SKOPS_VERSION_NOTE}. It needs pandas, scikit-learn and skops:",
        "",
        "```python",
        snippet,
        "```",
        "",
        f"- numeric inputs (median-imputed, standardised): {', '.join(feats.get('numeric', [])) or 'none'}",
        f"- categorical inputs (given as text; most-frequent imputed, one-hot): "
        f"{', '.join(feats.get('categorical', [])) or 'none'}",
        *[f"  - `{c}`: {', '.join(values)}" for c, values in (info.get("categories") or {}).items()],
        f"- classes: {', '.join(map(str, classes))}",
        f"- split: `splits.json` names each split's rows (0-based, in the table as read); {info.get('split', '')}",
    ]
    if info.get("derived"):
        lines.append(
            f"- derived before use (`data.derive` in `model_card.json`'s recipe): {', '.join(info['derived'])}"
        )
    return "\n".join(lines) + "\n"


def export_tabular(problem, weights: Mapping[str, torch.Tensor], path: Path) -> dict[str, Any] | None:
    """`evofair export`'s hook for a tabular `fair_classification` model: writes model.skops and
    returns what the model card records (a `readme` entry is appended to README.md). A model
    over text embeddings has no portable preprocessing: nothing beyond the genome file."""
    if problem.params.text:
        return None
    problem.ensure_setup()
    tab = problem.tabular
    model = pipeline(tab.transformer, weights, problem.class_names)
    write_pipeline(model, path)
    data = problem.params.data
    snippet = loading_snippet(
        read_line(problem.info.get("data"), data.format if data else None, data.na_values if data else ())
    )
    info = {**problem.info, "categories": categories(tab.transformer)}
    return {
        "format": "sklearn Pipeline saved with skops",
        "file": MODEL_FILE,
        "inputs": tab.columns,
        "features": tab.describe(),
        "categories": info["categories"],
        "classes": [str(c) for c in problem.class_names],
        "loading": snippet,
        "readme": readme_section(info, problem.class_names, snippet),
    }
