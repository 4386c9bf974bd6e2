"""Two-phase SFT (pipeline step 7): base model, SFT records with the loss mask, the DeepSpeed recipe."""

from agentscaler_dagster.sft.base_model import load_model_and_tokenizer, model_summary, prepare_base_model
from agentscaler_dagster.sft.chat_template import CHAT_TEMPLATE, normalize_messages, parse_assistant_output, render
from agentscaler_dagster.sft.records import (
    IGNORE_INDEX,
    build_sft_records,
    read_sft_dataset,
    tokenize_for_sft,
    write_sft_dataset,
)

__all__ = [
    "CHAT_TEMPLATE",
    "IGNORE_INDEX",
    "build_sft_records",
    "load_model_and_tokenizer",
    "model_summary",
    "normalize_messages",
    "parse_assistant_output",
    "prepare_base_model",
    "read_sft_dataset",
    "render",
    "tokenize_for_sft",
    "write_sft_dataset",
]
