"""The API corpus stage: API specs in many formats -> one normalised, deduplicated corpus of ToolSpecs.

    from agentscaler_dagster.corpus import ingest, read_corpus
    report = ingest(["specs/"], "artifacts/corpus")   # corpus.parquet + ingest_report.json
    tools = read_corpus("artifacts/corpus")

Formats (detected per file, or forced): OpenAPI 3.0/3.1 and Swagger 2.0 (JSON or YAML), OpenAI tool JSON,
MCP tools/list results, ToolBench/RapidAPI tool JSON, BFCL function docs. See ``ingest`` for the
accounting and the cache, ``normalise`` for names and the read/write rules, ``schema`` for the JSON Schema
subset, ``quality`` for the filter and dedup.
"""

from agentscaler_dagster.corpus.ingest import IngestError, IngestReport, ingest
from agentscaler_dagster.corpus.normalise import classify, explicit_description
from agentscaler_dagster.corpus.readers import FORCE_CHOICES, FORMATS, detect_format
from agentscaler_dagster.corpus.store import read_corpus, write_corpus

__all__ = [
    "FORCE_CHOICES",
    "FORMATS",
    "IngestError",
    "IngestReport",
    "classify",
    "detect_format",
    "explicit_description",
    "ingest",
    "read_corpus",
    "write_corpus",
]
