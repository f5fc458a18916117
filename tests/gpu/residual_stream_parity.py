#!/usr/bin/env python3
"""The bf16 residual stream against diffusers' WanTransformer3DModel in bf16 (issue 22).

On the GPU machine (python torch; diffusers carried: PYTHONPATH=.device/diffusers/src; test_gpu
built in build/cuda). Not run by CI. Random weights at Wan2.1-T2V-1.3B's widths with --layers
blocks (default 6), random latents (--grid T,H,W latent frames x height x width, default 5,60,104:
7,800 tokens, 17 frames at 480x832) and umT5-width prompt rows. diffusers' forward in fp32 (TF32
off) and in bf16 (the model cast as WanPipeline runs it: bf16 latents, timestep, prompt) are saved
beside the transformer folder; then test_gpu's ResidualParityGpu case loads the DiT in bf16 and
runs it with each residual stream. Output: the case's line on stdout.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import torch
from safetensors.torch import save_file

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.set_grad_enabled(False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--grid", default="5,60,104")
    ap.add_argument("--work", default="/tmp/residual_stream_parity")
    a = ap.parse_args()
    from diffusers import WanTransformer3DModel
    T, H, W = (int(v) for v in a.grid.split(","))
    os.makedirs(a.work, exist_ok=True)
    t0 = time.time()
    torch.manual_seed(0)
    tr = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16,
                               out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=a.layers,
                               cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6,
                               rope_max_seq_len=1024).eval()
    # diffusers' default init leaves the modulation tables and some biases at zero; Wan's trained
    # weights do not: small random values there, so every branch's gate and shift is exercised.
    for name, p in tr.named_parameters():
        if "scale_shift_table" in name or name.endswith(".bias"):
            p.copy_(torch.randn_like(p) * 0.05)
    tr.save_pretrained(os.path.join(a.work, "transformer"), safe_serialization=True)
    with open(os.path.join(a.work, "model_index.json"), "w") as f:  # a diffusers folder with its DiT only
        json.dump({"_class_name": "WanPipeline", "transformer": ["diffusers", "WanTransformer3DModel"]}, f)
    g = torch.Generator().manual_seed(5)
    noise = torch.randn(1, 16, T, H, W, generator=g)
    emb = torch.zeros(1, 512, 4096)
    emb[:, :20] = torch.randn(1, 20, 4096, generator=g) * 0.2
    t = torch.tensor([700.0])
    dev = torch.device("cuda")
    tr = tr.to(dev)
    out32 = tr(hidden_states=noise.to(dev), timestep=t.to(dev), encoder_hidden_states=emb.to(dev), return_dict=False)[0]
    tr = tr.to(torch.bfloat16)
    out16 = tr(hidden_states=noise.to(dev, torch.bfloat16), timestep=t.to(dev), encoder_hidden_states=emb.to(dev, torch.bfloat16),
               return_dict=False)[0]
    io = {"noise": noise, "timestep": t, "prompt_embeds": emb, "forward_output": out32.float().cpu(),
          "forward_output_bf16": out16.float().cpu()}
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(a.work, "io.safetensors"))
    print(f"diffusers: {a.layers} blocks at 1.3B widths, {T * (H // 2) * (W // 2)} tokens, fp32 + bf16 forwards "
          f"in {time.time() - t0:.1f} s")
    del tr
    torch.cuda.empty_cache()
    test_gpu = os.environ.get("TEST_GPU", "build/cuda/tests/test_gpu")
    env = dict(os.environ, LONGSHOT_RESIDUAL_PARITY_DIR=a.work)
    p = subprocess.run([test_gpu, "--gtest_filter=ResidualParityGpu.*"], env=env, capture_output=True, text=True)
    print("\n".join(l for l in p.stdout.splitlines() if "parity" in l or "OK" in l or "FAILED" in l or "Failure" in l
                    or "Expected" in l or "Which is" in l))
    print(p.stderr[-2000:])
    sys.exit(p.returncode)


if __name__ == "__main__":
    main()
