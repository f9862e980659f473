"""The recipes by the key a `forge.catalog` row names them with (one file per recipe).

A new recipe is a module here plus one entry below; the catalog row that uses it
says for which task, strategy and provider.
"""

from __future__ import annotations

from forge.training.recipe import Recipe
from forge.training.recipes.dpo import train_dpo
from forge.training.recipes.extractive_qa import train_extractive_qa
from forge.training.recipes.rlhf import train_rlhf
from forge.training.recipes.seq2seq import train_seq2seq
from forge.training.recipes.sft import train_causal_sft

RECIPES: dict[str, Recipe] = {
    "causal-sft": train_causal_sft,
    "seq2seq": train_seq2seq,
    "extractive-qa": train_extractive_qa,
    "dpo": train_dpo,
    "rlhf": train_rlhf,
}
