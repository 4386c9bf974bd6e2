"""The three-stage trajectory filter (paper, step 6): validity, state alignment, exact match."""

from agentscaler_dagster.filters.picture import funnel_picture
from agentscaler_dagster.filters.stages import (
    STAGES,
    FilterResult,
    apply_filters,
    check_exact_match,
    check_state_alignment,
    check_structure,
    check_validity,
    injected_error_scores,
    most_repeated_ngram,
)
from agentscaler_dagster.judge import canonical_arguments, successful_calls

__all__ = [
    "STAGES",
    "FilterResult",
    "apply_filters",
    "canonical_arguments",
    "check_exact_match",
    "check_state_alignment",
    "check_structure",
    "check_validity",
    "funnel_picture",
    "injected_error_scores",
    "most_repeated_ngram",
    "successful_calls",
]
