"""How much MiniLM work the subset texts are, and what this CPU's matrix units can do (issue 4, item 7).

    PYTHONPATH=. /work/venv/bin/python benchmarks/cpu_ceiling.py

Counts the word pieces of the subset tool texts (all, and distinct; plain encode's padded batches of 32 too),
turns them into MiniLM-L6 FLOPs (6 layers: QKV + output projections, the two FFN matmuls, attention scores and
mixing), and times `torch.mm` in fp32 and bf16 at a square size and at MiniLM's FFN shape. With a plain encode
time T, 3x plain needs (distinct GFLOP) / (T / 3) GFLOP/s; compare it with the fp32 peak.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from bench_domains import _subset_tools  # noqa: E402

from agentscaler_dagster.domains.embed import minilm_model_dir, tool_text  # noqa: E402

D, FF, LAYERS = 384, 1536, 6


def sequence_flops(n: int) -> int:
    return LAYERS * (2 * n * (4 * D * D + 2 * D * FF) + 2 * 2 * n * n * D)


def mm_gflops(torch, dtype, m: int, k: int, n: int, reps: int) -> float:
    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = min(best, (time.perf_counter() - t) / reps)
    return 2 * m * k * n / best / 1e9


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoTokenizer

    tools, _, _ = _subset_tools()
    texts = [tool_text(t, "parameters") for t in tools]
    tok = AutoTokenizer.from_pretrained(str(minilm_model_dir()))
    lengths = [len(x) for x in tok(texts, truncation=True, max_length=256)["input_ids"]]
    distinct = [len(x) for x in tok(sorted(set(texts)), truncation=True, max_length=256)["input_ids"]]
    ordered = sorted(lengths, reverse=True)
    batches = [ordered[i:i + 32] for i in range(0, len(ordered), 32)]
    plain = sum(sequence_flops(max(b)) * len(b) for b in batches) / 1e9
    useful = sum(sequence_flops(n) for n in distinct) / 1e9
    print(f"texts {len(texts)}, word pieces {sum(lengths)}; distinct texts {len(distinct)}, word pieces {sum(distinct)}")
    print(f"MiniLM work: plain encode (padded batches of 32) {plain:.0f} GFLOP; distinct texts unpadded {useful:.0f} GFLOP")
    threads = torch.get_num_threads()
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        square = mm_gflops(torch, dtype, 2048, 2048, 2048, 10)
        ffn = mm_gflops(torch, dtype, 512, D, FF, 200)
        print(f"torch.mm {name}, {threads} threads: 2048^3 {square:.0f} GFLOP/s; 512x{D} @ {D}x{FF} {ffn:.0f} GFLOP/s")
    print(f"3x plain needs {useful:.0f} GFLOP / (T_plain / 3) of useful work, e.g. T_plain = 33.6 s -> "
          f"{useful / (33.6 / 3):.0f} GFLOP/s")


if __name__ == "__main__":
    main()
