#!/usr/bin/env python3
"""Wan2.1 VAE: our LibTorch port (bench_vae) against diffusers' AutoencoderKLWan, on the GPU machine.

Run through tests/gpu/wan_vae_parity.sh (builds bench_vae first) or run_release_checks.sh. Steps,
the acceptance checks first; the extras run only while the time budget lasts ($VAE_BUDGET_S,
default 100 s; each extra is skipped, and says so, when too little is left). Results are rewritten
after every step, so a timeout still leaves the finished ones.
  0. diffusers AutoencoderKLWan at the full Wan2.1 shape (base 96, z 16), PyTorch's random init
     (seed 0; conv_out scaled down until < 5 % of decoded values sit at the [-1, 1] clamp, so the
     comparison is not of clamped pixels), saved with diffusers names (save_pretrained).
  1. CPU fp32, small size: decode of 3 latent frames at 8x8 (9 frames of 64x64), streamed; encode
     (posterior mean) of 9 frames of 64x64. Target: relative L2 <= 1e-4.
  2. GPU bf16 decode at 480x832 (21 latent frames -> 81 frames) against diffusers fp32 (TF32 off),
     next to diffusers' own bf16 error. Target: ours <= 2x diffusers'.
  3. Time and peak CUDA memory of an 81-frame decode at 480x832 and 720x1280: diffusers' decode
     (bf16, whole clip on the GPU) and ours (bench_vae: streamed, frames to 8 bits on the host).
  Extras: the CPU decode from a torch.save .pth with the original Wan2.1 names and as one whole
  clip; ours with 4 and 1 full-resolution frames per pass; tiled at 720x1280; encode of 81 frames
  at 480x832 in fp32 against diffusers'.
Results: $OUT/wan_vae_parity.json and $OUT/wan_vae_parity.md.
"""
import collections
import json
import math
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
BUDGET = float(os.environ.get("VAE_BUDGET_S", "100"))
os.makedirs(OUT, exist_ok=True)
os.makedirs(WORK, exist_ok=True)
T0 = time.time()
R = {"steps": {}, "skipped": []}


def log(msg):
    print(f"[{time.time() - T0:6.1f}s] {msg}", flush=True)


def left():
    return BUDGET - (time.time() - T0)


def extra(name, needs_s):
    """True when an optional step fits the budget; records the skip otherwise."""
    if left() >= needs_s:
        return True
    R["skipped"].append(f"{name} (needs ~{needs_s} s, {left():.0f} s left)")
    log(f"skipped {name}: {left():.0f} s left")
    return False


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
        write_results()
        raise SystemExit(f"failed: {' '.join(cmd)}")
    line = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    log("ours: " + line)
    return line


def bench_rows(json_path):
    data = json.load(open(json_path))
    return data, {row["size"]: {"time_s": row["time_s"], "peak_gib": row["peak_gib"]} for row in data["rows"]}


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


def fmt(v, spec=".2e"):
    return format(v, spec) if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)) else str(v)


def write_results():
    R["wall_s"] = round(time.time() - T0, 1)
    with open(os.path.join(OUT, "wan_vae_parity.json"), "w") as f:
        json.dump(R, f, indent=2)
    s1, s2, s3, s4 = (R["steps"].get(k, {}) for k in ("cpu_fp32_parity", "gpu_bf16_480x832", "timing_81_frames",
                                                       "encode_81_frames_480x832"))
    m = R.get("model", {})
    md = [f"# Wan2.1 VAE parity and speed ({R.get('device', '?')}, torch {torch.__version__})", "",
          f"Random weights at the full Wan2.1 shape ({m.get('params_m')} M params; conv_out x {m.get('conv_out_scale')}, "
          f"{fmt(100 * m.get('clamped_share', float('nan')), '.1f')} % clamped pixels).", "",
          "| check | value | target |", "|---|---|---|"]
    for k, v in s1.items():
        if k != "pass":
            md.append(f"| CPU fp32 {k} rel L2 | {fmt(v)} | <= 1e-4 |")
    if s2:
        md.append(f"| GPU 480x832x81: diffusers bf16 vs diffusers fp32 | {fmt(s2.get('diffusers_bf16_vs_fp32'))} | |")
        md.append(f"| GPU 480x832x81: ours bf16 vs diffusers fp32 | {fmt(s2.get('ours_bf16_vs_diffusers_fp32'))} "
                  f"({fmt(s2.get('ratio'), '.2f')}x diffusers') | <= 2x |")
        if "ours_fp32_vs_diffusers_fp32" in s2:
            md.append(f"| GPU 480x832x81: ours fp32 (TF32 convs) vs diffusers fp32 | {fmt(s2['ours_fp32_vs_diffusers_fp32'])} | |")
    if s3:
        md += ["", "| 81 frames | diffusers bf16 time | diffusers peak | ours bf16 streamed time | ours peak |",
               "|---|---|---|---|---|"]
        for key in ("480x832", "720x1280"):
            d, o = s3.get("diffusers", {}).get(key, {}), s3.get("ours", {}).get(key, {})
            md.append(f"| {key} | {fmt(d.get('time_s'), '.2f')} s | {fmt(d.get('peak_gib'), '.2f')} GiB | "
                      f"{fmt(o.get('time_s'), '.2f')} s | {fmt(o.get('peak_gib'), '.2f')} GiB |")
        for key, v in s3.get("ours_pass", {}).items():
            md.append(f"| {key} (ours; default 2) | | | {fmt(v['time_s'], '.2f')} s | {fmt(v['peak_gib'], '.2f')} GiB |")
        for key, v in s3.get("ours_tiled", {}).items():
            md.append(f"| {key} tiled (ours) | | | {fmt(v['time_s'], '.2f')} s | {fmt(v['peak_gib'], '.2f')} GiB |")
        md += ["", f"Latent preview projection of a whole 21x60x104 latent (GPU bf16): "
                   f"{fmt(s3.get('preview_projection_ms_21x60x104'), '.3f')} ms."]
    if s4:
        md.append(f"Encode 81 frames 480x832 fp32: {json.dumps(s4)}")
    md.append("")
    md.append(f"Pass: CPU parity {s1.get('pass')}, GPU bf16 {s2.get('pass')}. Skipped: {R['skipped'] or 'none'}. "
              f"Wall time {R['wall_s']} s.")
    with open(os.path.join(OUT, "wan_vae_parity.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    return md


# ---- 0. the model --------------------------------------------------------------------------------
torch.manual_seed(0)
torch.set_num_threads(os.cpu_count() or 1)
dev = torch.device("cuda")
R["device"] = torch.cuda.get_device_name(0)
vae = AutoencoderKLWan().eval()
scaled = 0
with torch.no_grad():
    vae_gpu = vae.to(dev)  # the calibration decodes run on the GPU (same module, moved back below)
    probe = torch.randn(1, 16, 2, 8, 8, device=dev)
    while True:
        frac = (vae_gpu.decode(probe).sample.abs() > 0.999).float().mean().item()
        if frac < 0.05 or scaled >= 8:
            break
        vae.decoder.conv_out.weight.mul_(0.5)
        vae.decoder.conv_out.bias.mul_(0.5)
        scaled += 1
vae = vae.to("cpu")
params = sum(p.numel() for p in vae.parameters())
log(f"AutoencoderKLWan: {params / 1e6:.1f} M params, conv_out scaled by 2^-{scaled}, clamped share {frac:.3f}")
vae.save_pretrained(os.path.join(WORK, "vae"))
st_path = os.path.join(WORK, "vae", "diffusion_pytorch_model.safetensors")
R["model"] = {"params_m": round(params / 1e6, 2), "conv_out_scale": 2.0 ** -scaled, "clamped_share": frac}

# ---- 1. CPU fp32 parity --------------------------------------------------------------------------
with torch.no_grad():
    z = torch.randn(1, 16, 3, 8, 8)
    video = torch.rand(1, 3, 9, 64, 64) * 2 - 1
    save_file({"latents": z}, os.path.join(WORK, "z_small.safetensors"))
    save_file({"video": video}, os.path.join(WORK, "video_small.safetensors"))
    t = time.time()
    ref_dec = vae.decode(z).sample[0]
    ref_enc = vae.encode(video).latent_dist.mean[0]
    log(f"diffusers CPU decode+encode {time.time() - t:.1f}s")
s1 = R["steps"]["cpu_fp32_parity"] = {}
out = os.path.join(WORK, "decode_small.safetensors")
ours("--vae", st_path, "--latents", os.path.join(WORK, "z_small.safetensors"), "--raw", "--device", "cpu", "--dtype", "fp32",
     "--out", out)
s1["decode_streamed"] = rel_l2(load_file(out)["frames"], ref_dec)
out = os.path.join(WORK, "encode_small.safetensors")
ours("--vae", st_path, "--video", os.path.join(WORK, "video_small.safetensors"), "--raw", "--device", "cpu", "--out", out)
s1["encode_mean"] = rel_l2(load_file(out)["latents"], ref_enc)
s1["pass"] = all(v <= 1e-4 for k, v in s1.items() if k != "pass")
log(f"step 1 (CPU fp32, target <= 1e-4): {s1}")
write_results()

# ---- 2. GPU bf16 at 480x832 ----------------------------------------------------------------------
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False
vae = vae.to(dev)
with torch.no_grad():
    z = torch.randn(1, 16, 21, 60, 104)
    save_file({"latents": z}, os.path.join(WORK, "z_480.safetensors"))
    ref32 = vae.decode(z.to(dev)).sample[0].cpu()
    vae16 = AutoencoderKLWan().eval().to(dev, torch.bfloat16)
    vae16.load_state_dict(vae.state_dict())
    ref16 = vae16.decode(z.to(dev, torch.bfloat16)).sample[0].float().cpu()
torch.backends.cudnn.allow_tf32 = True  # the default again, for the timings below
del vae
torch.cuda.empty_cache()
out = os.path.join(WORK, "ours_480.safetensors")
ours("--vae", st_path, "--latents", os.path.join(WORK, "z_480.safetensors"), "--raw", "--device", "cuda", "--dtype", "bf16",
     "--out", out)
s2 = R["steps"]["gpu_bf16_480x832"] = {"diffusers_bf16_vs_fp32": rel_l2(ref16, ref32),
                                       "ours_bf16_vs_diffusers_fp32": rel_l2(load_file(out)["frames"], ref32)}
s2["ratio"] = s2["ours_bf16_vs_diffusers_fp32"] / s2["diffusers_bf16_vs_fp32"]
s2["pass"] = s2["ratio"] <= 2.0
del ref16
log(f"step 2 (GPU bf16 480x832, target ratio <= 2): {s2}")
write_results()

# ---- 3. time and peak memory, 81 frames ----------------------------------------------------------
s3 = R["steps"]["timing_81_frames"] = {"diffusers": {}, "ours": {}}
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
            s3["diffusers"][key] = {"time_s": statistics.median(times), "peak_gib": torch.cuda.max_memory_allocated() / 2**30}
        except torch.cuda.OutOfMemoryError:
            s3["diffusers"][key] = {"error": "out of memory"}
        log(f"diffusers {key}: {s3['diffusers'][key]}")
        torch.cuda.empty_cache()
del vae16
torch.cuda.empty_cache()
ours("--vae", st_path, "--sizes", "480x832,720x1280", "--reps", "2", "--json", os.path.join(WORK, "bench_ours.json"))
data, s3["ours"] = bench_rows(os.path.join(WORK, "bench_ours.json"))
s3["preview_projection_ms_21x60x104"] = data.get("preview_projection_ms_21x60x104")
write_results()

# ---- extras, while the budget lasts --------------------------------------------------------------
for p in ("0", "1"):  # full-resolution levels 4 frames (the whole chunk) or 1 frame per pass; default 2
    if extra(f"480x832 with {p} frames per pass", 12):
        ours("--vae", st_path, "--sizes", "480x832", "--reps", "2", "--pass", p, "--json", os.path.join(WORK, "bench_pass.json"))
        s3.setdefault("ours_pass", {}).update(
            {f"{k} pass {p}": v for k, v in bench_rows(os.path.join(WORK, "bench_pass.json"))[1].items()})
        write_results()
if extra("fp32 GPU decode", 12):
    out = os.path.join(WORK, "ours_480.safetensors")
    if ours("--vae", st_path, "--latents", os.path.join(WORK, "z_480.safetensors"), "--raw", "--device", "cuda", "--dtype",
            "fp32", "--out", out, fatal=False) is not None:
        s2["ours_fp32_vs_diffusers_fp32"] = rel_l2(load_file(out)["frames"], ref32)
        write_results()
del ref32
if extra("CPU decode from a .pth with the original names, and as one whole clip", 15):
    pth_path = os.path.join(WORK, "Wan2.1_VAE.pth")
    sd = load_file(st_path)
    torch.save(collections.OrderedDict((to_original(k), v) for k, v in sd.items()), pth_path)
    del sd
    for name, weights, more in (("decode_from_pth", pth_path, []), ("decode_whole_clip", st_path, ["--chunk", "0"])):
        out = os.path.join(WORK, f"{name}.safetensors")
        # The .pth read (LibTorch's unpickler on python's torch.save) is reported, not fatal.
        ok = ours("--vae", weights, "--latents", os.path.join(WORK, "z_small.safetensors"), "--raw", "--device", "cpu",
                  "--dtype", "fp32", "--out", out, *more, fatal=False)
        s1[name] = rel_l2(load_file(out)["frames"], ref_dec) if ok is not None else float("nan")
    s1["pass"] = all(v <= 1e-4 for k, v in s1.items() if k != "pass")
    write_results()
if extra("720x1280 tiled", 15):
    ours("--vae", st_path, "--sizes", "720x1280", "--reps", "1", "--tile", "--json", os.path.join(WORK, "bench_tiled.json"))
    s3["ours_tiled"] = bench_rows(os.path.join(WORK, "bench_tiled.json"))[1]
    write_results()
if extra("encode 81 frames at 480x832", 30):
    s4 = R["steps"]["encode_81_frames_480x832"] = {}
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
            s4["diffusers_fp32"] = {"time_s": time.time() - t, "peak_gib": torch.cuda.max_memory_allocated() / 2**30}
        del vae32
        torch.cuda.empty_cache()
        torch.backends.cudnn.allow_tf32 = True
        out = os.path.join(WORK, "ours_enc_480.safetensors")
        line = ours("--vae", st_path, "--video", os.path.join(WORK, "video_480.safetensors"), "--raw", "--device", "cuda",
                    "--out", out, fatal=False)
        if line is None:
            raise RuntimeError("bench_vae --video failed")
        s4["ours_fp32"] = line
        s4["ours_fp32_vs_diffusers_fp32"] = rel_l2(load_file(out)["latents"], ref_mu)
    except Exception as e:  # reported; the earlier steps stand
        s4["error"] = repr(e)
    log(f"encode 81 frames 480x832 fp32: {s4}")

print("\n".join(write_results()))
