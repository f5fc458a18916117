#!/usr/bin/env python3
"""The bar for our DiT block (issue 22): one Wan2.1-1.3B block in plain PyTorch, compiled.

One block (dim 1536, 12 heads x 128, FFN 8960, text 512 x 4096 -> cross-attention on the text MLP's
output, 3D RoPE, AdaLN modulation from a timestep embedding; bf16 weights, fp32 residual stream and
norm math as Wan runs under autocast, like our block) compiled with torch.compile, attention:
  dense  - scaled_dot_product_attention under the cuDNN backend,
  flex   - FlexAttention on the ~90 % radial mask OUR kernel runs (bench_block --export-masks:
           the model's layer-0 mask, int32 BSR, loaded as in flex_baseline.py),
at 32,760 tokens (21x30x52, 81 frames 480x832) and 196,560 (126x30x52); plus diffusers' eager
WanTransformer3DModel (full 1.3B, 30 blocks, random weights) for one denoising step = the cond +
uncond forward pair at 32,760 tokens. With --ours (bench_block's JSON) it prints ours beside it.
Every block here computes its text K/V itself (as a plain block does); ours caches them per job.

  PYTHONPATH=$PWD/.device/diffusers/src python3 tests/bench/block_torch.py \
      --masks /tmp/masks --ours bench_block.json --out $OUT/block_torch.json [--budget 170]
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from flex_baseline import load_mask, median_ms  # noqa: E402  (same mask format, same timing)

DIM, HEADS, HEAD_DIM, FFN, TEXT_DIM, TEXT_LEN, FREQ_DIM, EPS, THETA = 1536, 12, 128, 8960, 4096, 512, 256, 1e-6, 10000.0
BF16 = torch.bfloat16
GRIDS = {32760: (21, 30, 52), 196560: (126, 30, 52)}


def rope_tables(t, h, w, device):
    """cos/sin [N, D/2] fp32, Wan's split of head_dim over (t, h, w): d - 4*(d//6), 2*(d//6), 2*(d//6)."""
    s = HEAD_DIM // 6
    parts = (HEAD_DIM - 4 * s, 2 * s, 2 * s)
    idx = torch.arange(t * h * w)
    pos = (idx // (h * w), (idx // w) % h, idx % w)
    angles = [torch.outer(p.double(), 1.0 / THETA ** (torch.arange(0, part, 2, dtype=torch.float64) / part))
              for p, part in zip(pos, parts)]
    ang = torch.cat(angles, 1)
    return ang.cos().float().to(device), ang.sin().float().to(device)


def rms(y, g):
    yf = y.float()
    return yf * torch.rsqrt(yf.pow(2).mean(-1, keepdim=True) + EPS) * g.float()


def rope(x, cos, sin):
    """Rotates pairs (2i, 2i+1) of x [B, N, H, D] (fp32) by the per-token angles."""
    x2 = x.unflatten(-1, (HEAD_DIM // 2, 2))
    x0, x1 = x2[..., 0], x2[..., 1]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), -1).flatten(-2)


class WanBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        lin = torch.nn.Linear
        self.q, self.k, self.v, self.o = lin(DIM, DIM), lin(DIM, DIM), lin(DIM, DIM), lin(DIM, DIM)
        self.cq, self.ck, self.cv, self.co = lin(DIM, DIM), lin(DIM, DIM), lin(DIM, DIM), lin(DIM, DIM)
        self.norm_q, self.norm_k = torch.nn.Parameter(torch.ones(DIM)), torch.nn.Parameter(torch.ones(DIM))
        self.cnorm_q, self.cnorm_k = torch.nn.Parameter(torch.ones(DIM)), torch.nn.Parameter(torch.ones(DIM))
        self.norm3 = torch.nn.LayerNorm(DIM, eps=EPS)  # cross_attn_norm: affine
        self.ffn1, self.ffn2 = lin(DIM, FFN), lin(FFN, DIM)
        self.modulation = torch.nn.Parameter(torch.randn(1, 6, DIM) / DIM ** 0.5)

    def forward(self, x, e, context, cos, sin, block_mask=None):
        B, N, _ = x.shape
        L = context.shape[1]
        m = (self.modulation.float() + e).chunk(6, dim=1)
        h = (F.layer_norm(x, (DIM,), eps=EPS) * (1 + m[1]) + m[0]).to(BF16)
        q = rope(rms(self.q(h), self.norm_q).view(B, N, HEADS, HEAD_DIM), cos, sin).to(BF16).transpose(1, 2)
        k = rope(rms(self.k(h), self.norm_k).view(B, N, HEADS, HEAD_DIM), cos, sin).to(BF16).transpose(1, 2)
        v = self.v(h).view(B, N, HEADS, HEAD_DIM).transpose(1, 2)
        if block_mask is None:
            a = F.scaled_dot_product_attention(q, k, v)
        else:
            from torch.nn.attention.flex_attention import flex_attention
            a = flex_attention(q, k, v, block_mask=block_mask)
        x = x + self.o(a.transpose(1, 2).reshape(B, N, DIM)).float() * m[2]
        h3 = F.layer_norm(x, (DIM,), self.norm3.weight.float(), self.norm3.bias.float(), EPS).to(BF16)
        cq = rms(self.cq(h3), self.cnorm_q).to(BF16).view(B, N, HEADS, HEAD_DIM).transpose(1, 2)
        ck = rms(self.ck(context), self.cnorm_k).to(BF16).view(B, L, HEADS, HEAD_DIM).transpose(1, 2)
        cv = self.cv(context).view(B, L, HEADS, HEAD_DIM).transpose(1, 2)
        ca = F.scaled_dot_product_attention(cq, ck, cv)
        x = x + self.co(ca.transpose(1, 2).reshape(B, N, DIM)).float()
        f = (F.layer_norm(x, (DIM,), eps=EPS) * (1 + m[4]) + m[3]).to(BF16)
        return x + self.ffn2(F.gelu(self.ffn1(f), approximate="tanh")).float() * m[5]


def block_inputs(n, dev):
    """x fp32 [1, N, dim]; e: the time MLP's 6-way projection of a sinusoid (as the model makes it)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, n, DIM, generator=g).to(dev)
    t = torch.tensor([500.0], dtype=torch.float64)
    half = FREQ_DIM // 2
    sinus = torch.cat([torch.cos(t[:, None] * 10000.0 ** (-torch.arange(half) / half)),
                       torch.sin(t[:, None] * 10000.0 ** (-torch.arange(half) / half))], 1).float()
    time_mlp = torch.nn.Sequential(torch.nn.Linear(FREQ_DIM, DIM), torch.nn.SiLU(), torch.nn.Linear(DIM, DIM))
    proj = torch.nn.Sequential(torch.nn.SiLU(), torch.nn.Linear(DIM, 6 * DIM))
    with torch.no_grad():
        e = proj(time_mlp(sinus)).view(1, 6, DIM).to(dev)
        text_mlp = torch.nn.Sequential(torch.nn.Linear(TEXT_DIM, DIM), torch.nn.GELU(approximate="tanh"),
                                       torch.nn.Linear(DIM, DIM)).to(dev, BF16)
        context = text_mlp(torch.randn(1, TEXT_LEN, TEXT_DIM, generator=g).to(dev, BF16))
    return x, e, context


def iters_for(n):
    return 10 if n < 50000 else 3


def diffusers_step(dev, iters):
    """diffusers' WanTransformer3DModel, eager, full 1.3B: one cond + uncond forward pair (ms)."""
    from diffusers import WanTransformer3DModel
    torch.manual_seed(0)
    with torch.device(dev):
        tr = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128,
                                   in_channels=16, out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=8960,
                                   num_layers=30, cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6,
                                   rope_max_seq_len=1024)
    tr = tr.to(BF16).eval()
    x = torch.randn(1, 16, 21, 60, 104, device=dev, dtype=BF16)
    t = torch.tensor([500.0], device=dev)
    cond = torch.randn(1, TEXT_LEN, TEXT_DIM, device=dev, dtype=BF16)
    uncond = torch.zeros_like(cond)

    def step():
        with torch.no_grad():
            tr(hidden_states=x, timestep=t, encoder_hidden_states=cond, return_dict=False)
            tr(hidden_states=x, timestep=t, encoder_hidden_states=uncond, return_dict=False)
    ms = median_ms(step, 1, iters)
    del tr
    torch.cuda.empty_cache()
    return ms


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--masks", help="bench_block --export-masks folder (masks.json is read from --ours)")
    ap.add_argument("--ours", help="bench_block --json output: our rows beside these")
    ap.add_argument("--out", required=True, help="JSON to write")
    ap.add_argument("--tokens", default="32760,196560", help="token counts (21x30x52, 126x30x52)")
    ap.add_argument("--budget", type=float, default=170.0, help="seconds; later measurements are skipped (said so)")
    ap.add_argument("--no-diffusers", action="store_true")
    return ap.parse_args()


def print_report(gpu, rows, our_rows, diff, skipped):
    """The PyTorch rows beside ours (bench_block's JSON), the diffusers step, what was skipped."""
    print(f"\nGPU: {gpu} · torch {torch.__version__} · {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("\n| tokens | PyTorch block (torch.compile) | ms / block | ours: mode (linears) | ms / block | "
          "speedup of ours (PyTorch ms / ours ms) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        kind = "dense-sdpa" if r["variant"].startswith("dense") else "radial90"
        mine = [o for o in our_rows if o["n"] == r["n"] and o["mode"] == kind] or [None]
        for o in mine:
            cell = "– | – | –" if o is None else \
                f"{kind} ({o['precision']}) | {o['block_ms']:.2f} | {r['block_ms'] / o['block_ms']:.2f}×"
            print(f"| {r['n']:,} | {r['variant']} | {r['block_ms']:.2f} | {cell} |")
    if diff is not None:
        print(f"\ndiffusers WanTransformer3DModel, eager, 30 blocks, 32,760 tokens: {diff:.0f} ms per step (cond + uncond)")
        for o in our_rows:
            if o["n"] == 32760 and o["mode"] in ("dense-sdpa", "radial90"):
                print(f"  ours {o['mode']} ({o['precision']}), step est. {o['step_ms_est']:.0f} ms: "
                      f"{diff / o['step_ms_est']:.2f}× faster than diffusers eager")
    for s in skipped:
        print(f"skipped: {s}")


def main():
    args = parse_args()
    if not torch.cuda.is_available():
        print("block_torch: skipped, torch sees no CUDA device")
        return 0
    t_start = time.time()
    left = lambda: args.budget - (time.time() - t_start)
    dev = torch.device("cuda")
    ours = {}
    masks = {}
    if args.ours and os.path.exists(args.ours):
        with open(args.ours) as f:
            ours = json.load(f)
        masks = {m["n"]: m for m in ours.get("masks", [])}
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.manual_seed(0)
    block = WanBlock().to(dev, BF16)
    block.modulation.data = block.modulation.data.float()
    block.eval()
    compiled = torch.compile(block, dynamic=False)
    rows = []
    skipped = []
    diff = None

    def run_diffusers():
        nonlocal diff
        if args.no_diffusers:
            return
        if left() < 25:
            skipped.append("diffusers eager step: budget")
            return
        try:
            diff = diffusers_step(dev, 3)
            print(f"  diffusers eager step (cond + uncond, 32,760 tokens): {diff:.0f} ms", file=sys.stderr)
        except Exception as ex:  # say what failed, keep the block rows
            print(f"block_torch: diffusers eager step failed: {str(ex).splitlines()[0][:160]}")

    token_counts = [int(s) for s in args.tokens.split(",")]
    # The diffusers step right after the 32,760-token rows: the longer grid's compiles may eat the budget.
    order = [n for n in token_counts if n <= 32760] + ["diffusers"] + [n for n in token_counts if n > 32760]
    for n in order:
        if n == "diffusers":
            run_diffusers()
            continue
        grid = GRIDS.get(n)
        if grid is None:
            print(f"block_torch: no grid for {n} tokens (known: {sorted(GRIDS)})")
            continue
        x, e, context = block_inputs(n, dev)
        cos, sin = rope_tables(*grid, dev)
        variants = [("dense (SDPA cuDNN)", None)]
        m = masks.get(n)
        if m and args.masks:
            bm, _ = load_mask(os.path.join(args.masks, m["file"]), m["heads"], m["num_q_blocks"], m["num_k_blocks"], n,
                              "cuda")
            variants.append((f"flex, radial {100 * m['block_sparsity']:.1f} %", bm))
        else:
            skipped.append(f"flex at {n}: no exported mask (run bench_block --export-masks first)")
        for name, bm in variants:
            if left() < (60 if n > 100000 else 30):
                skipped.append(f"{name} at {n}: budget")
                continue
            with torch.no_grad():
                fn = lambda: compiled(x, e, context, cos, sin, bm)
                t0 = time.time()
                try:
                    if bm is None:
                        with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
                            fn()
                            torch.cuda.synchronize()
                            compile_s = time.time() - t0
                            ms = median_ms(fn, 1, iters_for(n))
                    else:
                        fn()
                        torch.cuda.synchronize()
                        compile_s = time.time() - t0
                        ms = median_ms(fn, 1, iters_for(n))
                except Exception as ex:  # say what failed, keep the other rows
                    print(f"block_torch: {name} at {n} failed: {str(ex).splitlines()[0][:160]}")
                    continue
            rows.append({"n": n, "variant": name, "block_ms": ms, "compile_s": compile_s,
                         "sparsity": m["block_sparsity"] if bm is not None else 0.0})
            print(f"  {n:7d} {name:28s} {ms:8.2f} ms/block (compile + first call {compile_s:.0f} s)", file=sys.stderr)
        del x, e, context, cos, sin
        torch.cuda.empty_cache()

    gpu = torch.cuda.get_device_name(0)
    print_report(gpu, rows, ours.get("rows", []), diff, skipped)
    result = {"gpu": gpu, "torch": torch.__version__, "rows": rows, "diffusers_step_ms": diff, "skipped": skipped,
              "note": "fp32 residual stream and norm math, bf16 linears and attention; text K/V computed in the block"}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"\nJSON: {args.out} ({time.time() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
