#!/usr/bin/env python3
"""Library baselines for bench_attention, on the same shapes and the same exported masks.

Reads bench_attention's JSON (--ours) and its exported BSR masks (--mask-dir), times torch's
scaled_dot_product_attention with each available backend (cuDNN, flash, efficient) as the dense
bar and torch FlexAttention (compiled, block 128) on every mask, then prints one table:
ours vs the best dense backend and vs Flex, with the ratio to the ideal 1/(1-s). Writes the
merged JSON to --out. Runs on the GPU machine (python torch), right after bench_attention.

  python3 tests/bench/flex_baseline.py --ours ours.json --mask-dir masks --out merged.json
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch


def median_ms(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(iters):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    times.sort()
    return times[len(times) // 2]


def iters_for(n):
    return 20 if n < 50000 else (6 if n < 150000 else 3)


def sdpa_times(q, k, v, iters):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    out = {}
    for name, backend in (("cudnn", SDPBackend.CUDNN_ATTENTION), ("flash", SDPBackend.FLASH_ATTENTION),
                          ("efficient", SDPBackend.EFFICIENT_ATTENTION)):
        try:
            with sdpa_kernel([backend]):
                fn = lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v)
                out[name] = median_ms(fn, 2, iters)
        except RuntimeError as e:  # backend not available for these inputs: say so, skip it
            print(f"  sdpa {name}: unavailable ({str(e).splitlines()[0][:80]})", file=sys.stderr)
    return out


def load_mask(path, heads, nq, nk, seq_len, device):
    """BSR (row_offsets, col_indices int32) → Flex BlockMask; every kept block is 'full'."""
    from torch.nn.attention.flex_attention import BlockMask
    raw = np.fromfile(path, dtype=np.int32)
    rows = heads * nq
    offsets = torch.from_numpy(raw[: rows + 1].astype(np.int64))
    cols = torch.from_numpy(raw[rows + 1:].astype(np.int64))
    counts = (offsets[1:] - offsets[:-1]).to(torch.int32)
    width = max(1, int(counts.max()))
    idx = torch.zeros(rows, nk, dtype=torch.int32)
    row_of = torch.repeat_interleave(torch.arange(rows), counts.to(torch.int64))
    pos = torch.arange(cols.numel()) - offsets[:-1][row_of]
    idx[row_of, pos] = cols.to(torch.int32)
    kv_num = counts.view(1, heads, nq).to(device)
    kv_idx = idx.view(1, heads, nq, nk).to(device)
    zeros = torch.zeros_like(kv_num)
    # Kept blocks are whole blocks: no element-wise mask_mod (the sequence end is bounded by
    # seq_lengths, as in our kernel).
    try:
        bm = BlockMask.from_kv_blocks(zeros, torch.zeros_like(kv_idx), kv_num, kv_idx, BLOCK_SIZE=128,
                                      mask_mod=None, seq_lengths=(seq_len, seq_len))
    except TypeError:  # a torch without seq_lengths: the lengths come from q/k at call time
        bm = BlockMask.from_kv_blocks(zeros, torch.zeros_like(kv_idx), kv_num, kv_idx, BLOCK_SIZE=128)
    return bm, width


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ours", required=True, help="bench_attention --json output")
    ap.add_argument("--mask-dir", required=True, help="bench_attention --export-dir folder")
    ap.add_argument("--out", required=True, help="merged JSON to write")
    ap.add_argument("--no-flex", action="store_true", help="time SDPA backends only")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("flex_baseline: skipped, torch sees no CUDA device")
        return 0
    with open(args.ours) as f:
        ours = json.load(f)
    H, D = ours["heads"], ours["head_dim"]
    results = ours["results"]
    from torch.nn.attention.flex_attention import flex_attention
    flex = torch.compile(flex_attention, dynamic=False)

    by_n = {}
    for r in results:
        by_n.setdefault(r["n"], []).append(r)
    dense = {}
    for n, rs in by_n.items():
        torch.manual_seed(0)
        q, k, v = (torch.randn(1, H, n, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        it = iters_for(n)
        sd = sdpa_times(q, k, v, it)
        ours_dense = next(r["ours_ms"] for r in rs if r["mode"] == "dense")
        # The fastest dense of all, ours included (the stricter baseline), and its name.
        candidates = dict(sd, ours=ours_dense)
        best_name = min(candidates, key=candidates.get)
        best = candidates[best_name]
        dense[n] = {"sdpa_ms": sd, "best_sdpa": best_name, "best_dense_ms": best}
        print(f"N={n}: sdpa {sd} ours dense {ours_dense:.3f} ms", file=sys.stderr)
        nb = math.ceil(n / 128)
        for r in rs:
            r["best_dense_ms"] = best
            r["flex_ms"] = None
            if args.no_flex or not r.get("mask_file") or r["mode"] == "dense-mma":
                continue
            heads = r["mask_heads"]
            bm, _ = load_mask(os.path.join(args.mask_dir, r["mask_file"]), heads, nb, nb, n, "cuda")
            r["flex_ms"] = median_ms(lambda: flex(q, k, v, block_mask=bm), 2, it)
            print(f"  {r['mode']:20s} {r['target_sparsity']:.2f} ours {r['ours_ms']:.3f} flex {r['flex_ms']:.3f}",
                  file=sys.stderr)
        del q, k, v
        torch.cuda.empty_cache()

    print(f"\nGPU: {ours['gpu']} · {ours['date']} · torch {torch.__version__} · bf16 B=1 H={H} D={D} block 128")
    print("\n| N | mode | sparsity | ours ms | Flex ms | best dense ms (backend) | ours speedup | Flex speedup | ours / ideal | Flex / ideal | mask build % (host in loop / GPU alone / in model) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        n = r["n"]
        best = dense[n]["best_dense_ms"]
        keep = max(1e-9, 1.0 - r["token_sparsity"])
        sp = best / r["ours_ms"]
        fsp = best / r["flex_ms"] if r.get("flex_ms") else None
        fmt = lambda x, f="{:.2f}": "–" if x is None else f.format(x)
        build = "static" if r["mask_build_ms"] < 0 else " / ".join(
            f"{100 * r[key] / r['ours_ms']:.1f}" for key in ("mask_build_ms", "mask_build_gpu_ms", "mask_build_model_ms"))
        print(f"| {n} | {r['mode']} | {100 * r['token_sparsity']:.1f}% | {r['ours_ms']:.3f} | {fmt(r.get('flex_ms'), '{:.3f}')} | "
              f"{best:.3f} ({dense[n]['best_sdpa']}) | {sp:.2f}× | {fmt(fsp)}× | {sp * keep:.2f} | {fmt(fsp and fsp * keep)} | {build} |")
    print("\n| N | " + " | ".join(f"SDPA {b} ms" for b in ("cudnn", "flash", "efficient")) + " | ours dense ms | ours / best SDPA throughput |")
    print("|---|---|---|---|---|---|")
    for n, d in dense.items():
        od = next(r["ours_ms"] for r in by_n[n] if r["mode"] == "dense")
        best_sdpa = min(d["sdpa_ms"].values()) if d["sdpa_ms"] else float("nan")
        cells = " | ".join(fmt_ms(d["sdpa_ms"].get(b)) for b in ("cudnn", "flash", "efficient"))
        print(f"| {n} | {cells} | {od:.3f} | {best_sdpa / od:.2f} |")
    ours["dense_baselines"] = {str(n): d for n, d in dense.items()}
    ours["torch_version"] = torch.__version__
    with open(args.out, "w") as f:
        json.dump(ours, f, indent=2)
    return 0


def fmt_ms(x):
    return "–" if x is None else f"{x:.3f}"


if __name__ == "__main__":
    sys.exit(main())
