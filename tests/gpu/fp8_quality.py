#!/usr/bin/env python3
"""FP8 linear layers' quality cost on real videos (issue 22): the built-in model on the GPU, each held-out
world caption generated with bf16 linear layers (`--precision native`) and with FP8 ones
(`--precision fp8`), same seed, dense attention; PSNR and SSIM of the FP8 video against the bf16 one,
per prompt and mean, at 1x (32 frames) and 4x (128 frames), 64x64, 20 steps.

On the GPU machine (Hopper; not run by CI): python3 tests/gpu/fp8_quality.py [--per-regime 4] [--horizons 1,4]
Needs build/cuda/app/longshot (LONGSHOT env overrides) with the built-in weights in assets/, and
scikit-image + torchvision (PNG decoding) in python. Results: $OUT/fp8_quality.{json,md}.
PSNR: 10 log10(255^2 / MSE) over all frames, pixels and channels. SSIM: skimage's structural_similarity
per frame (RGB, data_range 255, 7x7 Gaussian-free window as skimage's default), averaged over frames.
"""
import argparse
import glob
import json
import math
import os
import shutil
import subprocess
import time

import numpy as np


def frames(d):
    from torchvision.io import read_image
    return np.stack([read_image(p).permute(1, 2, 0).numpy() for p in sorted(glob.glob(os.path.join(d, "frame_*.png")))])


def compare(a, b):
    from skimage.metrics import structural_similarity
    x, y = frames(a).astype(np.float64), frames(b).astype(np.float64)
    if x.shape != y.shape or x.size == 0:
        raise RuntimeError(f"frame sets differ: {x.shape} vs {y.shape}")
    mse = float(((x - y) ** 2).mean())
    psnr = float("inf") if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)
    ssim = float(np.mean([structural_similarity(x[i], y[i], channel_axis=2, data_range=255) for i in range(len(x))]))
    return psnr, ssim


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-regime", type=int, default=4)
    ap.add_argument("--horizons", default="1,4")
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args()
    exe = os.environ.get("LONGSHOT", "build/cuda/app/longshot")
    out = os.environ.get("OUT", "gpu-out")
    os.makedirs(out, exist_ok=True)
    p = subprocess.run([exe, "calibrate", "--world-prompts", str(a.per_regime), "--seed", "5370206"],
                       capture_output=True, text=True, check=True)
    prompts = [line.split("\t") for line in p.stdout.splitlines() if "\t" in line]
    res = {"runs": [], "steps": a.steps}
    t0 = time.time()
    for h in [int(x) for x in a.horizons.split(",")]:
        for row in prompts:
            regime, prompt = row[0], row[-1]
            dirs = {}
            for prec in ("native", "fp8"):
                d = f"/tmp/fp8q_{prec}"
                shutil.rmtree(d, ignore_errors=True)
                r = subprocess.run([exe, "generate", "--prompt", prompt, "--frames", str(32 * h), "--steps", str(a.steps),
                                    "--device", "cuda", "--no-recall", "--precision", prec, "--png-dir", d],
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    raise RuntimeError(f"{prec} generation failed: {r.stderr[-1500:]}")
                dirs[prec] = d
            psnr, ssim = compare(dirs["native"], dirs["fp8"])
            res["runs"].append({"horizon": h, "regime": regime, "prompt": prompt, "psnr_db": psnr, "ssim": ssim})
            print(f"{h}x {regime:7s} PSNR {psnr:6.2f} dB  SSIM {ssim:.4f}  {prompt}", flush=True)
    lines = ["| horizon | prompts | mean PSNR fp8 vs bf16 (dB) | min PSNR | mean SSIM | min SSIM |", "|---|---|---|---|---|---|"]
    for h in sorted({r["horizon"] for r in res["runs"]}):
        rs = [r for r in res["runs"] if r["horizon"] == h]
        ps = [r["psnr_db"] for r in rs]
        ss = [r["ssim"] for r in rs]
        lines.append(f"| {h}x | {len(rs)} | {np.mean(ps):.2f} | {min(ps):.2f} | {np.mean(ss):.4f} | {min(ss):.4f} |")
    res["seconds"] = time.time() - t0
    json.dump(res, open(os.path.join(out, "fp8_quality.json"), "w"), indent=2)
    open(os.path.join(out, "fp8_quality.md"), "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
