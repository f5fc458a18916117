#!/usr/bin/env python3
"""Wan2.1 VAE: our LibTorch port (bench_vae) against diffusers' AutoencoderKLWan, on the GPU machine.

Run through tests/gpu/wan_vae_parity.sh (builds bench_vae first). Steps:
  0. diffusers AutoencoderKLWan at the full Wan2.1 shape (base 96, z 16), PyTorch's random init
     (seed 0; conv_out scaled down until < 5 % of decoded values sit at the [-1, 1] clamp, so the
     comparison is not of clamped pixels); saved with diffusers names (save_pretrained) and, with
     the original Wan2.1 names, as a torch.save .pth.
  1. CPU fp32, small size: decode of 5 latent frames at 8x8 (17 frames of 64x64), streamed and
     whole-clip, from the safetensors and from the .pth; encode (posterior mean) of those 17
     frames. Target: relative L2 <= 1e-4.
  2. GPU bf16 decode at 480x832 (21 latent frames -> 81 frames) against diffusers fp32 (TF32 off),
     next to diffusers' own bf16 error. Target: ours <= 2x diffusers'.
  3. Time and peak CUDA memory of an 81-frame decode at 480x832 and 720x1280: diffusers' decode
     (bf16, whole clip on the GPU) and ours (bench_vae: streamed, frames to 8 bits on the host);
     ours also with 4 and 1 full-resolution frames per pass, and tiled at 720x1280.
  4. Encode of 81 frames at 480x832 in fp32: time, peak, and our latents against diffusers'.
Results: $OUT/wan_vae_parity.json and $OUT/wan_vae_parity.md.
"""
import collections
import json
import os
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.environ.get("DIFFUSERS_SRC", os.path.join(os.getcwd(), ".device/diffusers/src")))
from diffusers import AutoencoderKLWan  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

OUT = os.environ.get("OUT", os.path.join(os.getcwd(), "gpu-out"))
WORK = os.environ.get("WORK", "/tmp/wan_vae_parity")
BENCH = os.environ.get("BENCH_VAE", "build/cuda/tests/bench/bench_vae")
os.makedirs(OUT, exist_ok=True)
os.makedirs(WORK, exist_ok=True)
T0 = time.time()
results = {"steps": {}}


def log(msg):
    print(f"[{time.time() - T0:6.1f}s] {msg}", flush=True)


def rel_l2(a, b):
    a, b = a.double().cpu(), b.double().cpu()
    return ((a - b).norm() / b.norm()).item()


def ours(*args, fatal=True):
    cmd = [BENCH, *args]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout, r.stderr)
        if not fatal:
            return None
        raise SystemExit(f"failed: {' '.join(cmd)}")
    line = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    log("ours: " + line)
    return line


def to_original(n):
    """diffusers name -> Wan2.1 name (the inverse of diffusers' convert_wan_vae_to_diffusers)."""
    if n.startswith("quant_conv."):
        return "conv1." + n[len("quant_conv."):]
    if n.startswith("post_quant_conv."):
        return "conv2." + n[len("post_quant_conv."):]
    for a, b in ((".norm1.gamma", ".residual.0.gamma"), (".conv1.", ".residual.2."), (".norm2.gamma", ".residual.3.gamma"),
                 (".conv2.", ".residual.6."), (".conv_shortcut.", ".shortcut.")):
        n = n.replace(a, b)
    for a, b in (("encoder.conv_in.", "encoder.conv1."), ("decoder.conv_in.", "decoder.conv1."),
                 ("mid_block.resnets.0.", "middle.0."), ("mid_block.attentions.0.", "middle.1."),
                 ("mid_block.resnets.1.", "middle.2."), ("norm_out.gamma", "head.0.gamma"), ("conv_out.", "head.2."),
                 ("encoder.down_blocks.", "encoder.downsamples.")):
        n = n.replace(a, b)
    if n.startswith("decoder.up_blocks."):
        parts = n.split(".")
        block = int(parts[2])
        if parts[3] == "resnets":
            n = ".".join(["decoder", "upsamples", str(4 * block + int(parts[4]))] + parts[5:])
        else:  # upsamplers.0.<rest>
            n = ".".join(["decoder", "upsamples", str(4 * block + 3)] + parts[5:])
    return n


# ---- 0. the model --------------------------------------------------------------------------------
torch.manual_seed(0)
torch.set_num_threads(os.cpu_count() or 1)
vae = AutoencoderKLWan().eval()
scaled = 0
with torch.no_grad():
    probe = torch.randn(1, 16, 2, 8, 8)
    while True:
        frac = (vae.decode(probe).sample.abs() > 0.999).float().mean().item()
        if frac < 0.05 or scaled >= 8:
            break
        vae.decoder.conv_out.weight.mul_(0.5)
        vae.decoder.conv_out.bias.mul_(0.5)
        scaled += 1
params = sum(p.numel() for p in vae.parameters())
log(f"AutoencoderKLWan: {params / 1e6:.1f} M params, conv_out scaled by 2^-{scaled}, clamped share {frac:.3f}")
vae.save_pretrained(os.path.join(WORK, "vae"))
st_path = os.path.join(WORK, "vae", "diffusion_pytorch_model.safetensors")
pth_path = os.path.join(WORK, "Wan2.1_VAE.pth")
torch.save(collections.OrderedDict((to_original(k), v) for k, v in vae.state_dict().items()), pth_path)
results["model"] = {"params_m": round(params / 1e6, 2), "conv_out_scale": 2.0 ** -scaled, "clamped_share": frac}

# ---- 1. CPU fp32 parity --------------------------------------------------------------------------
with torch.no_grad():
    z = torch.randn(1, 16, 5, 8, 8)
    video = torch.rand(1, 3, 17, 64, 64) * 2 - 1
    save_file({"latents": z}, os.path.join(WORK, "z_small.safetensors"))
    save_file({"video": video}, os.path.join(WORK, "video_small.safetensors"))
    t = time.time()
    ref_dec = vae.decode(z).sample[0]
    ref_enc = vae.encode(video).latent_dist.mean[0]
    log(f"diffusers CPU decode+encode {time.time() - t:.1f}s")
step1 = {}
for name, weights, extra in (("decode_streamed", st_path, []), ("decode_whole_clip", st_path, ["--chunk", "0"]),
                             ("decode_from_pth", pth_path, [])):
    out = os.path.join(WORK, f"{name}.safetensors")
    # The .pth read (LibTorch's unpickler on python's torch.save) is reported, not fatal.
    if ours("--vae", weights, "--latents", os.path.join(WORK, "z_small.safetensors"), "--raw", "--device", "cpu",
            "--dtype", "fp32", "--out", out, *extra, fatal=weights != pth_path) is None:
        step1[name] = float("nan")
        continue
    step1[name] = rel_l2(load_file(out)["frames"], ref_dec)
out = os.path.join(WORK, "encode.safetensors")
ours("--vae", st_path, "--video", os.path.join(WORK, "video_small.safetensors"), "--raw", "--device", "cpu", "--out", out)
step1["encode_mean"] = rel_l2(load_file(out)["latents"], ref_enc)
step1["pass"] = all(v <= 1e-4 for k, v in step1.items() if k != "pass")
results["steps"]["cpu_fp32_parity"] = step1
log(f"step 1 (CPU fp32, target <= 1e-4): {step1}")

# ---- 2. GPU bf16 at 480x832 ----------------------------------------------------------------------
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False
dev = torch.device("cuda")
vae = vae.to(dev)
with torch.no_grad():
    z = torch.randn(1, 16, 21, 60, 104)
    save_file({"latents": z}, os.path.join(WORK, "z_480.safetensors"))
    ref32 = vae.decode(z.to(dev)).sample[0].cpu()
    vae16 = AutoencoderKLWan().eval().to(dev, torch.bfloat16)
    vae16.load_state_dict(vae.state_dict())
    ref16 = vae16.decode(z.to(dev, torch.bfloat16)).sample[0].float().cpu()
torch.backends.cudnn.allow_tf32 = True  # the default, for the timings below
torch.backends.cuda.matmul.allow_tf32 = False
del vae
torch.cuda.empty_cache()
out = os.path.join(WORK, "ours_480.safetensors")
ours("--vae", st_path, "--latents", os.path.join(WORK, "z_480.safetensors"), "--raw", "--device", "cuda", "--dtype", "bf16",
     "--out", out)
ours_bf16 = load_file(out)["frames"]
ours("--vae", st_path, "--latents", os.path.join(WORK, "z_480.safetensors"), "--raw", "--device", "cuda", "--dtype", "fp32",
     "--out", out)
ours_fp32 = load_file(out)["frames"]
step2 = {"diffusers_bf16_vs_fp32": rel_l2(ref16, ref32), "ours_bf16_vs_diffusers_fp32": rel_l2(ours_bf16, ref32),
         "ours_fp32_vs_diffusers_fp32": rel_l2(ours_fp32, ref32), "frames": list(ours_bf16.shape)}
step2["ratio"] = step2["ours_bf16_vs_diffusers_fp32"] / step2["diffusers_bf16_vs_fp32"]
step2["pass"] = step2["ratio"] <= 2.0
results["steps"]["gpu_bf16_480x832"] = step2
log(f"step 2 (GPU bf16 480x832, target ratio <= 2): {step2}")
del ref32, ref16, ours_bf16, ours_fp32

# ---- 3. time and peak memory, 81 frames ----------------------------------------------------------
step3 = {"diffusers": {}, "ours": {}}
with torch.no_grad():
    for h, w in ((480, 832), (720, 1280)):
        key = f"{h}x{w}"
        try:
            zz = torch.randn(1, 16, 21, h // 8, w // 8, device=dev, dtype=torch.bfloat16)
            vae16.decode(zz[:, :, :2])  # warm-up
            times = []
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            for _ in range(2):
                torch.cuda.synchronize()
                t = time.time()
                x = vae16.decode(zz).sample
                torch.cuda.synchronize()
                times.append(time.time() - t)
                del x
            peak = torch.cuda.max_memory_allocated() / 2**30
            step3["diffusers"][key] = {"time_s": statistics.median(times), "peak_gib": peak}
        except torch.cuda.OutOfMemoryError:
            step3["diffusers"][key] = {"error": "out of memory"}
        log(f"diffusers {key}: {step3['diffusers'][key]}")
        torch.cuda.empty_cache()
del vae16
torch.cuda.empty_cache()
ours("--vae", st_path, "--sizes", "480x832,720x1280", "--reps", "3", "--json", os.path.join(WORK, "bench_ours.json"))
bench_ours = json.load(open(os.path.join(WORK, "bench_ours.json")))
for row in bench_ours["rows"]:
    step3["ours"][row["size"]] = {"time_s": row["time_s"], "peak_gib": row["peak_gib"]}
step3["preview_projection_ms_21x60x104"] = bench_ours.get("preview_projection_ms_21x60x104")
for p in ("0", "1"):  # the full-resolution levels 4 frames (whole chunk) or 1 frame at a time; default 2
    ours("--vae", st_path, "--sizes", "480x832", "--reps", "2", "--pass", p, "--json", os.path.join(WORK, f"bench_pass{p}.json"))
    for row in json.load(open(os.path.join(WORK, f"bench_pass{p}.json")))["rows"]:
        step3.setdefault("ours_pass", {})[f"{row['size']} pass {p}"] = {"time_s": row["time_s"], "peak_gib": row["peak_gib"]}
ours("--vae", st_path, "--sizes", "720x1280", "--reps", "1", "--tile", "--json", os.path.join(WORK, "bench_tiled.json"))
for row in json.load(open(os.path.join(WORK, "bench_tiled.json")))["rows"]:
    step3["ours_tiled"] = {row["size"]: {"time_s": row["time_s"], "peak_gib": row["peak_gib"]}}
results["steps"]["timing_81_frames"] = step3

# ---- 4. encode, 81 frames at 480x832, fp32 (the image/video-to-video path) -------------------------
step4 = {}
try:
    torch.backends.cudnn.allow_tf32 = False
    vae32 = AutoencoderKLWan.from_pretrained(os.path.join(WORK, "vae")).eval().to(dev)
    with torch.no_grad():
        video = torch.rand(1, 3, 81, 480, 832) * 2 - 1
        save_file({"video": video}, os.path.join(WORK, "video_480.safetensors"))
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        t = time.time()
        ref_mu = vae32.encode(video.to(dev)).latent_dist.mean[0].cpu()
        torch.cuda.synchronize()
        step4["diffusers_fp32"] = {"time_s": time.time() - t, "peak_gib": torch.cuda.max_memory_allocated() / 2**30}
    del vae32
    torch.cuda.empty_cache()
    torch.backends.cudnn.allow_tf32 = True
    out = os.path.join(WORK, "ours_enc_480.safetensors")
    line = ours("--vae", st_path, "--video", os.path.join(WORK, "video_480.safetensors"), "--raw", "--device", "cuda",
                "--out", out, fatal=False)
    if line is None:
        raise RuntimeError("bench_vae --video failed")
    step4["ours_fp32_line"] = line
    step4["ours_fp32_vs_diffusers_fp32"] = rel_l2(load_file(out)["latents"], ref_mu)
except Exception as e:  # reported, the earlier steps stand
    step4["error"] = repr(e)
results["steps"]["encode_81_frames_480x832"] = step4
log(f"step 4 (encode 81 frames 480x832 fp32): {step4}")
results["device"] = torch.cuda.get_device_name(0)
results["torch"] = torch.__version__
results["wall_s"] = round(time.time() - T0, 1)

with open(os.path.join(OUT, "wan_vae_parity.json"), "w") as f:
    json.dump(results, f, indent=2)
md = [f"# Wan2.1 VAE parity and speed ({results['device']}, torch {results['torch']})", "",
      f"Random weights at the full Wan2.1 shape ({results['model']['params_m']} M params; conv_out x "
      f"{results['model']['conv_out_scale']}, {100 * results['model']['clamped_share']:.1f} % clamped pixels).", "",
      "| check | value | target |", "|---|---|---|"]
for k, v in step1.items():
    if k != "pass":
        md.append(f"| CPU fp32 {k} rel L2 | {v:.2e} | <= 1e-4 |")
md.append(f"| GPU bf16 480x832x81: diffusers bf16 vs fp32 | {step2['diffusers_bf16_vs_fp32']:.2e} | |")
md.append(f"| GPU bf16 480x832x81: ours bf16 vs diffusers fp32 | {step2['ours_bf16_vs_diffusers_fp32']:.2e} "
          f"({step2['ratio']:.2f}x diffusers') | <= 2x |")
md.append(f"| GPU fp32 480x832x81: ours (TF32 convs) vs diffusers fp32 | {step2['ours_fp32_vs_diffusers_fp32']:.2e} | |")
md += ["", "| 81 frames | diffusers bf16 time | diffusers peak | ours bf16 streamed time | ours peak |", "|---|---|---|---|---|"]
for key in ("480x832", "720x1280"):
    d, o = step3["diffusers"].get(key, {}), step3["ours"].get(key, {})
    md.append(f"| {key} | {d.get('time_s', float('nan')):.2f} s | {d.get('peak_gib', float('nan')):.2f} GiB | "
              f"{o.get('time_s', float('nan')):.2f} s | {o.get('peak_gib', float('nan')):.2f} GiB |")
for key, v in step3.get("ours_pass", {}).items():
    md.append(f"| {key} (ours, full-resolution frames per pass; default 2) | | | {v['time_s']:.2f} s | {v['peak_gib']:.2f} GiB |")
if "ours_tiled" in step3:
    for key, v in step3["ours_tiled"].items():
        md.append(f"| {key} tiled (ours, --vae-tile) | | | {v['time_s']:.2f} s | {v['peak_gib']:.2f} GiB |")
md.append("")
if "diffusers_fp32" in step4:
    md.append(f"Encode 81 frames 480x832 fp32: diffusers {step4['diffusers_fp32']['time_s']:.2f} s, peak "
              f"{step4['diffusers_fp32']['peak_gib']:.2f} GiB; ours: {step4.get('ours_fp32_line', '?')}; ours (TF32 convs) vs "
              f"diffusers (TF32 off) rel L2 {step4.get('ours_fp32_vs_diffusers_fp32', float('nan')):.2e}.")
else:
    md.append(f"Encode step failed: {step4.get('error')}")
md.append(f"Latent preview projection of a whole 21x60x104 latent (bf16, GPU): {step3['preview_projection_ms_21x60x104']} ms.")
md.append(f"Pass: CPU parity {step1['pass']}, GPU bf16 {step2['pass']}. Wall time {results['wall_s']} s.")
with open(os.path.join(OUT, "wan_vae_parity.md"), "w") as f:
    f.write("\n".join(md) + "\n")
print("\n".join(md))
