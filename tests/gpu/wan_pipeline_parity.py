#!/usr/bin/env python3
"""Real Wan2.1 generation parity at the full 1.3B shape: diffusers' WanPipeline vs Longshot.

On the GPU machine (python torch + transformers; diffusers carried: PYTHONPATH=.device/diffusers/src;
test_gpu built in build/cuda). Not run by CI. Random weights at the real shapes:
WanTransformer3DModel with Wan2.1-T2V-1.3B's config and AutoencoderKLWan's default (Wan2.1) config,
saved as a diffusers folder. Prompt embeddings are random umT5-width rows ([1, 512, 4096], 20 / 9
real tokens, zero-padded as Wan's pipeline pads them) — the umT5 encoder's own parity is
tests/gpu/umt5_parity.py. Small latent size (9 frames at 240x416: 3x30x52 latents, 1,170 tokens).
fp32 with TF32 off. Then runs test_gpu's PipelineParityGpu cases on that folder.
Results: $OUT/wan_pipeline_parity.log (the C++ cases' own lines give the figures).
"""
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
    from diffusers import (AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler,
                           WanPipeline, WanTransformer3DModel)
    work = sys.argv[1] if len(sys.argv) > 1 else "/tmp/wan_pipeline_parity"
    test_gpu = os.environ.get("TEST_GPU", "build/cuda/tests/test_gpu")
    os.makedirs(work, exist_ok=True)
    t0 = time.time()
    torch.manual_seed(0)
    dev = torch.device("cuda")
    tr = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16,
                               out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30,
                               cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6,
                               rope_max_seq_len=1024).eval()
    vae = AutoencoderKLWan().eval()
    tr.save_pretrained(os.path.join(work, "transformer"), safe_serialization=True)
    vae.save_pretrained(os.path.join(work, "vae"), safe_serialization=True)
    unipc_cfg = dict(num_train_timesteps=1000, beta_schedule="linear", beta_start=0.0001, beta_end=0.02,
                     solver_order=2, prediction_type="flow_prediction", use_flow_sigmas=True, predict_x0=True,
                     solver_type="bh2", lower_order_final=True, final_sigmas_type="zero",
                     timestep_spacing="linspace", flow_shift=3.0)
    UniPCMultistepScheduler(**unipc_cfg).save_pretrained(os.path.join(work, "scheduler"))
    with open(os.path.join(work, "model_index.json"), "w") as f:
        json.dump({"_class_name": "WanPipeline", "scheduler": ["diffusers", "UniPCMultistepScheduler"],
                   "text_encoder": ["transformers", "UMT5EncoderModel"], "tokenizer": ["transformers", "T5TokenizerFast"],
                   "transformer": ["diffusers", "WanTransformer3DModel"], "vae": ["diffusers", "AutoencoderKLWan"]}, f)
    print(f"models built and saved in {time.time() - t0:.1f} s ({sum(p.numel() for p in tr.parameters()) / 1e9:.2f} B DiT params)")
    tr, vae = tr.to(dev), vae.to(dev)
    g = torch.Generator().manual_seed(5)

    def embeds(n):
        e = torch.zeros(1, 512, 4096)
        e[:, :n] = torch.randn(1, n, 4096, generator=g) * 0.2
        return e

    emb, nemb = embeds(20), embeds(9)
    H, W, F = 240, 416, 9
    noise = torch.randn(1, 16, 3, H // 8, W // 8, generator=g)
    io = {"prompt_embeds": emb, "negative_prompt_embeds": nemb, "noise": noise}
    t = torch.tensor([700.0])
    io["forward_timestep"] = t
    io["forward_output"] = tr(hidden_states=noise.to(dev), timestep=t.to(dev), encoder_hidden_states=emb.to(dev),
                              return_dict=False)[0].cpu().contiguous()

    def run(scheduler):
        pipe = WanPipeline(tokenizer=None, text_encoder=None, vae=vae, scheduler=scheduler, transformer=tr)
        pipe.set_progress_bar_config(disable=True)
        lat = pipe(prompt_embeds=emb.to(dev), negative_prompt_embeds=nemb.to(dev), height=H, width=W, num_frames=F,
                   num_inference_steps=6, guidance_scale=5.0, latents=noise.clone().to(dev), output_type="latent",
                   return_dict=False)[0]
        mean = torch.tensor(vae.config.latents_mean).view(1, 16, 1, 1, 1).to(dev)
        std = torch.tensor(vae.config.latents_std).view(1, 16, 1, 1, 1).to(dev)
        video = vae.decode(lat * std + mean, return_dict=False)[0]
        return lat.cpu().contiguous(), ((video + 1) / 2).clamp(0, 1).cpu().contiguous()

    t1 = time.time()
    io["unipc_latents"], io["unipc_frames"] = run(UniPCMultistepScheduler(**unipc_cfg))
    io["euler_latents"], io["euler_frames"] = run(FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0))
    print(f"WanPipeline (fp32, 2 runs of 6 steps + decode) in {time.time() - t1:.1f} s")
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(work, "io.safetensors"))
    del tr, vae
    torch.cuda.empty_cache()
    env = dict(os.environ, LONGSHOT_PIPELINE_PARITY_DIR=work)
    p = subprocess.run([test_gpu, "--gtest_filter=PipelineParityGpu.*"], env=env, capture_output=True, text=True)
    print("\n".join(l for l in p.stdout.splitlines() if "pipeline parity" in l or "OK" in l or "FAILED" in l or "Failure" in l))
    print(p.stderr[-2000:])
    print(f"total {time.time() - t0:.1f} s, test_gpu exit {p.returncode}")
    sys.exit(p.returncode)


if __name__ == "__main__":
    main()
