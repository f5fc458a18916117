#!/usr/bin/env python3
"""Golden fixtures computed by implementations we did not write (diffusers, transformers).

Runs where python torch, transformers and a diffusers source tree exist (the GPU machine:
PYTHONPATH=.device/diffusers/src). Everything runs on the CPU in fp32 with tiny random configs,
so the files are small enough to commit and the C++ tests in CI compare against them:

  tests/fixtures/schedulers/        diffusers' flow schedulers on a fixed toy velocity field
  tests/fixtures/umt5_tiny/         transformers' UMT5EncoderModel, tiny config
  tests/fixtures/wan_vae_tiny/      diffusers' AutoencoderKLWan, tiny channels, z = 16
  tests/fixtures/wan_pipeline_tiny/ diffusers' WanPipeline on a tiny transformer + the two above

Usage: python3 tools/oracle_fixtures.py OUT_DIR      (writes OUT_DIR/<name>/...)
Each folder gets a README.md describing its files; numbers are produced here, never edited.
"""
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

torch.manual_seed(0)
torch.set_grad_enabled(False)

OUT = sys.argv[1] if len(sys.argv) > 1 else "fixtures-out"


def folder(name):
    path = os.path.join(OUT, name)
    os.makedirs(path, exist_ok=True)
    return path


def write_readme(path, text):
    with open(os.path.join(path, "README.md"), "w") as f:
        f.write(text.strip() + "\n")


def versions():
    import diffusers
    import transformers
    return f"torch {torch.__version__}, transformers {transformers.__version__}, diffusers {diffusers.__version__}"


# ---------------------------------------------------------------------------------------------
# Schedulers: a fixed toy velocity field, recorded step by step.
# ---------------------------------------------------------------------------------------------
def toy_velocity(x, t, c):
    # Nonlinear in x and dependent on the timestep, so multistep solvers differ from Euler.
    return 0.8 * torch.tanh(x) - 0.5 * c + 0.3 * (t / 1000.0) * x


def record(scheduler, steps, x0, c):
    scheduler.set_timesteps(steps)
    x = x0.clone()
    rec = {"timesteps": [float(t) for t in scheduler.timesteps],
           "sigmas": [float(s) for s in scheduler.sigmas], "x": [x.flatten().tolist()], "v": []}
    for t in scheduler.timesteps:
        v = toy_velocity(x, float(t), c)
        rec["v"].append(v.flatten().tolist())
        x = scheduler.step(v, t, x, return_dict=False)[0]
        rec["x"].append(x.flatten().tolist())
    return rec


def schedulers():
    from diffusers import (DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler,
                           UniPCMultistepScheduler)
    path = folder("schedulers")
    g = torch.Generator().manual_seed(1234)
    x0 = torch.randn(2, 3, 4, generator=g, dtype=torch.float32)
    c = torch.linspace(-1.0, 1.0, 24, dtype=torch.float32).reshape(2, 3, 4)
    # The Wan2.1-T2V-1.3B-Diffusers scheduler_config.json, flow_shift varied.
    unipc_cfg = dict(num_train_timesteps=1000, beta_schedule="linear", beta_start=0.0001, beta_end=0.02,
                     solver_order=2, prediction_type="flow_prediction", use_flow_sigmas=True, predict_x0=True,
                     solver_type="bh2", lower_order_final=True, final_sigmas_type="zero",
                     timestep_spacing="linspace", steps_offset=0, disable_corrector=[])
    cases = []
    for steps, shift in [(6, 3.0), (6, 5.0), (10, 5.0), (50, 5.0), (50, 3.0), (2, 5.0), (1, 5.0)]:
        s = UniPCMultistepScheduler(flow_shift=shift, **unipc_cfg)
        cases.append({"sampler": "unipc", "steps": steps, "shift": shift, "config": dict(unipc_cfg, flow_shift=shift),
                      **record(s, steps, x0, c)})
    for steps, shift in [(6, 3.0), (6, 5.0), (50, 5.0), (1, 5.0)]:
        s = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift)
        cases.append({"sampler": "euler", "steps": steps, "shift": shift,
                      "config": {"class": "FlowMatchEulerDiscreteScheduler", "shift": shift},
                      **record(s, steps, x0, c)})
    dpm_cfg = dict(num_train_timesteps=1000, solver_order=2, prediction_type="flow_prediction",
                   use_flow_sigmas=True, algorithm_type="dpmsolver++", solver_type="midpoint",
                   lower_order_final=True, final_sigmas_type="zero")
    for steps, shift in [(6, 3.0), (6, 5.0), (50, 5.0)]:
        try:
            s = DPMSolverMultistepScheduler(flow_shift=shift, **dpm_cfg)
            cases.append({"sampler": "dpm++2m", "steps": steps, "shift": shift,
                          "config": dict(dpm_cfg, flow_shift=shift), **record(s, steps, x0, c)})
        except Exception as e:  # recorded, not hidden: the README lists what could not be made
            print("dpm++ fixture failed:", e)
    with open(os.path.join(path, "flow_schedulers.json"), "w") as f:
        json.dump({"made_with": versions(), "shape": [2, 3, 4], "c": c.flatten().tolist(), "cases": cases}, f)
    write_readme(path, f"""
# Scheduler goldens (diffusers)

Made by `tools/oracle_fixtures.py` with {versions()}, CPU, float32.

`flow_schedulers.json`: `shape` of the toy sample, `c` (flattened), and `cases`, each with
`sampler` (`unipc` = `UniPCMultistepScheduler` as in Wan2.1-T2V-1.3B-Diffusers' scheduler_config,
`flow_shift` varied; `euler` = `FlowMatchEulerDiscreteScheduler(shift)`; `dpm++2m` =
`DPMSolverMultistepScheduler(use_flow_sigmas, flow_prediction, dpmsolver++, midpoint, order 2)`),
`steps`, `shift`, `config`, `timesteps` (the values passed to the model, length steps),
`sigmas` (length steps + 1, ending with the final sigma), `x` (steps + 1 flattened samples:
x[0] is the initial noise, x[i+1] the scheduler's output after step i) and `v` (the model output
fed at step i).

Toy model output: `v = 0.8*tanh(x) - 0.5*c + 0.3*(t/1000)*x` with t the step's timestep. A replay
test feeds the recorded `v[i]` (so it tests the update rule alone) and compares `x[i+1]`;
float32 in diffusers, so expect agreement to ~1e-5 relative.
""")


# ---------------------------------------------------------------------------------------------
# umT5 encoder (transformers)
# ---------------------------------------------------------------------------------------------
def tiny_umt5():
    from transformers import UMT5Config, UMT5EncoderModel
    cfg = UMT5Config(vocab_size=320, d_model=64, d_kv=16, num_heads=4, d_ff=96, num_layers=3,
                     num_decoder_layers=3, relative_attention_num_buckets=32, relative_attention_max_distance=128,
                     feed_forward_proj="gated-gelu", dropout_rate=0.0, layer_norm_epsilon=1e-6,
                     pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    model = UMT5EncoderModel(cfg).eval()
    return cfg, model


def umt5(cfg, model):
    path = folder("umt5_tiny")
    model.save_pretrained(path, safe_serialization=True)
    g = torch.Generator().manual_seed(7)
    L = 40
    ids = torch.zeros(2, L, dtype=torch.long)
    mask = torch.zeros(2, L, dtype=torch.long)
    ids[0, :L - 1] = torch.randint(2, cfg.vocab_size, (L - 1,), generator=g)
    ids[0, L - 1] = 1  # EOS
    mask[0] = 1
    n = 11
    ids[1, :n - 1] = torch.randint(2, cfg.vocab_size, (n - 1,), generator=g)
    ids[1, n - 1] = 1
    mask[1, :n] = 1
    out = model(input_ids=ids, attention_mask=mask).last_hidden_state.contiguous()
    # Wan's contract: slice to the true length and zero the rest.
    zeroed = out * mask.unsqueeze(-1).to(out.dtype)
    # A long row too: distances past max_distance (128) use the log buckets' last bucket.
    ids_long = torch.randint(2, cfg.vocab_size, (1, 300), generator=g)
    ids_long[0, -1] = 1
    mask_long = torch.ones_like(ids_long)
    out_long = model(input_ids=ids_long, attention_mask=mask_long).last_hidden_state.contiguous()
    save_file({"input_ids": ids, "attention_mask": mask, "last_hidden_state": out, "zeroed_hidden_state": zeroed,
               "long_input_ids": ids_long, "long_last_hidden_state": out_long},
              os.path.join(path, "io.safetensors"))
    write_readme(path, f"""
# umT5 encoder golden (transformers `UMT5EncoderModel`)

Made by `tools/oracle_fixtures.py` with {versions()}, CPU, float32, random init (transformers' own).

- `config.json`, `model.safetensors`: `model.save_pretrained(...)` of a tiny config — vocab 320,
  d_model 64, d_kv 16, 4 heads, d_ff 96, 3 layers, 32 buckets, max distance 128, gated-gelu
  (tanh), eps 1e-6. Key names are the diffusers `text_encoder/` layout (transformers names; the
  tied `encoder.embed_tokens.weight` may be absent — `shared.weight` holds the embedding).
- `io.safetensors`:
  - `input_ids` [2, 40] int64 and `attention_mask` [2, 40] int64: row 0 has 40 real tokens
    (EOS = 1 last), row 1 has 11 real tokens then padding (id 0, mask 0).
  - `last_hidden_state` [2, 40, 64] float32: transformers' output (padded positions NOT zeroed).
  - `zeroed_hidden_state`: the same with padded positions zeroed (Wan's pipelines' contract).
  - `long_input_ids` [1, 300], `long_last_hidden_state` [1, 300, 64]: a row longer than the
    max distance (no padding).
""")


# ---------------------------------------------------------------------------------------------
# Wan VAE (diffusers)
# ---------------------------------------------------------------------------------------------
def tiny_vae():
    from diffusers import AutoencoderKLWan
    vae = AutoencoderKLWan(base_dim=8, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                           temperal_downsample=[False, True, True], dropout=0.0).eval()
    return vae


def wan_vae(vae):
    path = folder("wan_vae_tiny")
    vae.save_pretrained(path, safe_serialization=True)
    g = torch.Generator().manual_seed(11)
    latents = torch.randn(1, 16, 3, 4, 6, generator=g)
    decoded = vae.decode(latents, return_dict=False)[0].contiguous()
    video = (torch.rand(1, 3, 9, 32, 48, generator=g) * 2 - 1)
    # Smooth the video a little so the encoder sees structure, not only noise.
    video = torch.nn.functional.avg_pool3d(video, 3, stride=1, padding=1).contiguous()
    dist = vae.encode(video).latent_dist
    single = torch.randn(1, 16, 1, 4, 6, generator=g)
    decoded_single = vae.decode(single, return_dict=False)[0].contiguous()
    save_file({"latents": latents, "decoded": decoded, "video": video, "encoded_mean": dist.mean.contiguous(),
               "encoded_logvar": dist.logvar.contiguous(), "latents_single": single,
               "decoded_single": decoded_single}, os.path.join(path, "io.safetensors"))
    clamped = float((decoded.abs() >= 0.9999).float().mean())
    write_readme(path, f"""
# Wan2.1 VAE golden (diffusers `AutoencoderKLWan`)

Made by `tools/oracle_fixtures.py` with {versions()}, CPU, float32, random init (PyTorch's own).

- `config.json`, `diffusion_pytorch_model.safetensors`: `save_pretrained` of
  `AutoencoderKLWan(base_dim=8, z_dim=16, dim_mult=[1,2,4,4], num_res_blocks=2, attn_scales=[],
  temperal_downsample=[False,True,True])` — the Wan2.1 structure with base 8 instead of 96
  (channels 8/16/32/32; the mid block's single-head attention at 32). diffusers key names.
  `latents_mean` / `latents_std` in config.json are the published 16 + 16 constants.
- `io.safetensors` (all float32, NCTHW):
  - `latents` [1,16,3,4,6] → `decoded` [1,3,9,32,48] = `vae.decode(latents)` (raw latents: no
    mean/std applied — the pipeline does that before decode; output clamped to [-1, 1] by
    diffusers; {clamped:.1%} of the values sit at the clamp).
  - `latents_single` [1,16,1,4,6] → `decoded_single` [1,3,1,32,48] (one latent frame → one frame).
  - `video` [1,3,9,32,48] in [-1, 1] → `encoded_mean`, `encoded_logvar` [1,16,3,4,6]
    = `vae.encode(video).latent_dist.mean / .logvar`.
""")


# ---------------------------------------------------------------------------------------------
# WanPipeline end to end (diffusers), tiny transformer + the tiny text encoder and VAE above
# ---------------------------------------------------------------------------------------------
def pipeline(te_cfg, te, vae):
    from diffusers import (FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler, WanPipeline,
                           WanTransformer3DModel)
    path = folder("wan_pipeline_tiny")
    tr = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=32, in_channels=16,
                               out_channels=16, text_dim=te_cfg.d_model, freq_dim=256, ffn_dim=128, num_layers=2,
                               cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6,
                               rope_max_seq_len=1024).eval()
    unipc = UniPCMultistepScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=0.0001,
                                    beta_end=0.02, solver_order=2, prediction_type="flow_prediction",
                                    use_flow_sigmas=True, predict_x0=True, solver_type="bh2", lower_order_final=True,
                                    final_sigmas_type="zero", timestep_spacing="linspace", flow_shift=3.0)
    tr.save_pretrained(os.path.join(path, "transformer"), safe_serialization=True)
    te.save_pretrained(os.path.join(path, "text_encoder"), safe_serialization=True)
    vae.save_pretrained(os.path.join(path, "vae"), safe_serialization=True)
    unipc.save_pretrained(os.path.join(path, "scheduler"))
    import diffusers
    with open(os.path.join(path, "model_index.json"), "w") as f:
        json.dump({"_class_name": "WanPipeline", "_diffusers_version": diffusers.__version__,
                   "scheduler": ["diffusers", "UniPCMultistepScheduler"],
                   "text_encoder": ["transformers", "UMT5EncoderModel"],
                   "tokenizer": ["transformers", "T5TokenizerFast"],
                   "transformer": ["diffusers", "WanTransformer3DModel"],
                   "vae": ["diffusers", "AutoencoderKLWan"]}, f, indent=2)

    g = torch.Generator().manual_seed(21)
    text_len = 512

    def embed(n):
        ids = torch.zeros(1, text_len, dtype=torch.long)
        mask = torch.zeros(1, text_len, dtype=torch.long)
        ids[0, :n - 1] = torch.randint(2, te_cfg.vocab_size, (n - 1,), generator=g)
        ids[0, n - 1] = 1
        mask[0, :n] = 1
        h = te(input_ids=ids, attention_mask=mask).last_hidden_state
        e = torch.zeros_like(h)
        e[:, :n] = h[:, :n]  # Wan: slice to the true length, zero-pad to 512
        return ids, mask, e.contiguous()

    ids, mask, emb = embed(13)
    nids, nmask, nemb = embed(7)
    H, W, F = 32, 48, 9
    noise = torch.randn(1, 16, 3, H // 8, W // 8, generator=g)
    tensors = {"input_ids": ids, "attention_mask": mask, "prompt_embeds": emb,
               "negative_input_ids": nids, "negative_attention_mask": nmask, "negative_prompt_embeds": nemb,
               "noise": noise}

    def run(scheduler, steps, guidance):
        pipe = WanPipeline(tokenizer=None, text_encoder=te, vae=vae, scheduler=scheduler, transformer=tr)
        pipe.set_progress_bar_config(disable=True)
        lat = pipe(prompt_embeds=emb, negative_prompt_embeds=nemb, height=H, width=W, num_frames=F,
                   num_inference_steps=steps, guidance_scale=guidance, latents=noise.clone(),
                   output_type="latent", return_dict=False)[0]
        return lat.contiguous()

    def decode(lat):
        mean = torch.tensor(vae.config.latents_mean).view(1, 16, 1, 1, 1)
        std = torch.tensor(vae.config.latents_std).view(1, 16, 1, 1, 1)
        video = vae.decode(lat * std + mean, return_dict=False)[0]
        return ((video + 1) / 2).clamp(0, 1).contiguous()  # VideoProcessor's [-1,1] → [0,1]

    tensors["unipc_latents"] = run(unipc, 6, 5.0)
    tensors["unipc_frames"] = decode(tensors["unipc_latents"])
    euler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    tensors["euler_latents"] = run(euler, 6, 5.0)
    tensors["euler_frames"] = decode(tensors["euler_latents"])
    # One transformer forward, to separate DiT parity from sampler parity.
    t = torch.tensor([700.0])
    tensors["forward_timestep"] = t
    tensors["forward_output"] = tr(hidden_states=noise, timestep=t, encoder_hidden_states=emb,
                                   return_dict=False)[0].contiguous()
    save_file(tensors, os.path.join(path, "io.safetensors"))
    write_readme(path, f"""
# WanPipeline golden (diffusers), tiny random model

Made by `tools/oracle_fixtures.py` with {versions()}, CPU, float32, random init.

A diffusers model folder (no `tokenizer/`: no umT5 tokenizer can be downloaded here; token ids are
given instead):
- `transformer/`: `WanTransformer3DModel(patch (1,2,2), 2 heads × 32, in/out 16, text_dim 64,
  freq_dim 256, ffn 128, 2 layers, cross_attn_norm, qk_norm rms_norm_across_heads, eps 1e-6)`.
- `text_encoder/`: the `umt5_tiny` encoder (same weights as tests/fixtures/umt5_tiny).
- `vae/`: the `wan_vae_tiny` VAE (same weights as tests/fixtures/wan_vae_tiny).
- `scheduler/`: `UniPCMultistepScheduler` as Wan2.1-Diffusers ships it, `flow_shift` 3.0.
- `model_index.json` as a WanPipeline folder has it.

`io.safetensors`:
- `input_ids`/`attention_mask` [1,512] (13 real tokens, EOS last), `prompt_embeds` [1,512,64]
  = encoder output sliced to 13 tokens and zero-padded to 512 (`_get_t5_prompt_embeds`);
  `negative_*` likewise with 7 tokens.
- `noise` [1,16,3,4,6]: the initial latents (height 32, width 48, 9 frames).
- `unipc_latents` [1,16,3,4,6]: `WanPipeline(...)(prompt_embeds, negative_prompt_embeds,
  num_inference_steps=6, guidance_scale=5.0, latents=noise, output_type="latent")` with the
  UniPC scheduler above; `unipc_frames` [1,3,9,32,48] in [0,1]: those latents un-normalised
  (`z·std + mean`), `vae.decode`d and mapped (x+1)/2, clamped.
- `euler_latents`, `euler_frames`: the same with `FlowMatchEulerDiscreteScheduler(shift=3.0)`.
- `forward_timestep` [1] = 700 and `forward_output` [1,16,3,4,6]: one transformer forward of
  `noise` with `prompt_embeds` (separates DiT parity from sampler parity).
""")


def main():
    os.makedirs(OUT, exist_ok=True)
    schedulers()
    cfg, te = tiny_umt5()
    umt5(cfg, te)
    vae = tiny_vae()
    wan_vae(vae)
    pipeline(cfg, te, vae)
    for root, _, files in os.walk(OUT):
        for f in files:
            p = os.path.join(root, f)
            print(f"{os.path.getsize(p):>10}  {p}")


if __name__ == "__main__":
    main()
