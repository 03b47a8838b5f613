"""Anthropic HH-RLHF preference pairs, and the inputs of a problem that scores them with a local LM.

Shared by HyperDPO's alignment problem (`hh_rlhf`) and FairPO's generation variant
(`hh_rlhf_groups`): both read the shipped harmless-base subset (data/hh_rlhf_harmless_base, see its
PROVENANCE.md) or the user's own file in the same format, and both check their inputs before a
run writes anything.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from evofair.errors import UserError
from evofair.problems import shipped_data

DATA_FILE = shipped_data("hh_rlhf_harmless_base") / "test_first1000.jsonl.gz"
HUMAN, ASSISTANT = "\n\nHuman:", "\n\nAssistant:"


def load_hh_pairs(path: str | Path, limit: int | None = None) -> list[dict[str, str]]:
    """{prompt, chosen, rejected}: the shared transcript up to the last assistant turn, and the two
    final assistant turns. Pairs whose transcripts differ before that turn, or whose responses are
    identical, are skipped (they carry no preference on a common prompt)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"problem.args.data_path: {path}: file not found")
    opener = gzip.open if path.suffix == ".gz" else open
    out = []
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                c, r = row["chosen"], row["rejected"]
                i, j = c.rfind(ASSISTANT), r.rfind(ASSISTANT)
                if i < 0 or c[:i] != r[:j]:
                    continue
                prompt, yc, yr = c[: i + len(ASSISTANT)], c[i + len(ASSISTANT) :], r[j + len(ASSISTANT) :]
                if yc.strip() == yr.strip():
                    continue
                out.append({"prompt": prompt, "chosen": yc, "rejected": yr})
                if limit is not None and len(out) >= limit:
                    break
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"problem.args.data_path: {path}: expected JSONL with 'chosen'/'rejected' ({exc})") from None
    return out


def hh_data_path(data_path: str | None, data_root: str | None) -> Path:
    """The HH-RLHF pairs file: `data_path`, else under `data_root`, else the shipped subset."""
    if data_path:
        return Path(data_path)
    return Path(data_root) / "hh_rlhf_harmless_base" / DATA_FILE.name if data_root else DATA_FILE


def check_lm_inputs(model_path: str | None, data_path: Path) -> None:
    """A local Hugging Face causal-LM folder and the pairs file exist (before anything is written)."""
    if not model_path or not (Path(model_path) / "config.json").is_file():
        raise UserError(
            f"problem.args.model_path: expected a local Hugging Face model directory with "
            f"config.json, got {model_path!r}"
        )
    if not data_path.is_file():
        raise UserError(f"problem.args.data_path: {data_path}: file not found")
