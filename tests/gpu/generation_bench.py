#!/usr/bin/env python3
"""Issue 20's benchmark: one full Wan2.1-1.3B generation, 480x832 x 81 frames, 50 UniPC steps, CFG 5,
random weights at the real shapes, Longshot (dense and each paper mode at its default and at ~90 %
sparsity) side by side with diffusers' WanPipeline (eager PyTorch, cuDNN SDPA) on the same GPU.

On the GPU machine, not run by CI:
    PYTHONPATH=.device/diffusers/src python3 tests/gpu/generation_bench.py [--only diffusers,dense,...]
Needs build/cuda/app/longshot (LONGSHOT env to override), transformers, sentencepiece, safetensors.

1. The model folder (diffusers layout, once, kept in --work): WanTransformer3DModel with Wan2.1-T2V-1.3B's
   config saved in fp32 (as the released diffusers folder), umT5-XXL (transformers' UMT5EncoderModel at
   the full shape, random init) saved in bf16 shards, AutoencoderKLWan's default config in fp32, and a
   tokenizer: a 2,000-piece SentencePiece unigram model trained here on generated text (umT5's real
   spiece.model cannot be downloaded; token count per prompt differs, every prompt is padded to 512).
2. diffusers: components loaded with from_pretrained as Wan's example does (DiT and text encoder bf16,
   VAE fp32), all on the GPU; encode_prompt, the 50-step loop (output_type="latent") and vae.decode
   timed separately under torch.nn.attention.sdpa_kernel(CUDNN_ATTENTION).
3. Longshot: `longshot generate --model <folder>` per mode, a fresh text cache each run (so every run
   encodes), frames written as PNG (no ffmpeg there). Its summary gives encoding, decoding, the
   denoising+decoding time and peak CUDA memory; the process wall time includes loading.
Results: $OUT/generation_bench.{json,md} (rewritten after every run, so a cut-off call keeps its rows).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import types

import torch

PROMPT = "a red ball rolls across a wooden table and falls onto the floor, slow motion, detailed"
NEGATIVE = "blurry, low quality, static, distorted, watermark, text"
H, W, F = 480, 832, 81

# (name, extra flags). ~90 % variants turn the leading dense steps/layers off: with 12 of 50 steps
# dense, no mode's mean sparsity can pass 76 %.
RUNS = [
    ("dense", []),
    ("dynamicrad", ["--mode", "dynamicrad"]),
    # DynamicRad always keeps same-frame, adjacent-frame and first-frame pairs: at 21 latent frames its
    # masks stop at ~81 % block sparsity (`longshot masks --grid 21x30x52 --mode dynamicrad`, any
    # threshold or decay), so its sparsest setting stands in for ~90 %.
    ("dynamicrad-max", ["--mode", "dynamicrad", "--param", "dense_steps=0", "--param", "dense_layers=0"]),
    ("dfsattn", ["--mode", "dfsattn"]),
    ("dfsattn-90", ["--mode", "dfsattn", "--param", "keep_ratio=0.1", "--param", "ratio_step=0",
                    "--param", "warmup_steps=0", "--param", "dense_layers=0"]),
    ("lvsa-90", ["--mode", "lvsa", "--param", "window_frames=0", "--param", "sparsity_scale=0.1"]),
    # LVSA's default is dense at 81 frames (at or below its 21-latent-frame reference horizon): last.
    ("lvsa", ["--mode", "lvsa"]),
    ("radial-90", ["--mode", "radial-ratio", "--param", "keep_ratio=0.1"]),
]


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--work", default="/tmp/wanbench")
    p.add_argument("--only", default="", help="comma list of run names (diffusers, " +
                   ", ".join(n for n, _ in RUNS) + "); default all")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--frames", type=int, default=F)
    p.add_argument("--budget", type=float, default=1e9, help="skip runs that start after this many seconds")
    return p.parse_args()


def train_tokenizer(dst):
    import sentencepiece as spm
    words = ("red ball rolls across wooden table falls floor slow motion detailed blurry low quality static "
             "distorted watermark text cat dog runs jumps water sky city night light camera pans forest "
             "mountain river car drives road people walk street rain snow sun cloud bird flies ocean wave").split()
    g = torch.Generator().manual_seed(3)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        for _ in range(20000):
            idx = torch.randint(len(words), (12,), generator=g).tolist()
            f.write(" ".join(words[i] for i in idx) + "\n")
        corpus = f.name
    prefix = os.path.join(dst, "spiece")
    spm.SentencePieceTrainer.train(input=corpus, model_prefix=prefix, vocab_size=2000, model_type="unigram",
                                   pad_id=0, eos_id=1, unk_id=2, bos_id=-1, character_coverage=1.0,
                                   hard_vocab_limit=False, minloglevel=2)
    os.remove(corpus)
    os.remove(prefix + ".vocab")


def make_folder(work):
    """1. The random diffusers folder (skipped when it exists)."""
    if os.path.exists(os.path.join(work, "model_index.json")):
        print(f"model folder {work}: exists", flush=True)
        return
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel
    t0 = time.time()
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "tokenizer"))
    torch.manual_seed(0)
    with torch.device("cuda"):
        tr = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16,
                                   out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30,
                                   cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6,
                                   rope_max_seq_len=1024)
    tr.save_pretrained(os.path.join(work, "transformer"), safe_serialization=True)
    del tr
    cfg = UMT5Config(vocab_size=256384, d_model=4096, d_kv=64, num_heads=64, d_ff=10240, num_layers=24,
                     num_decoder_layers=24, relative_attention_num_buckets=32, relative_attention_max_distance=128,
                     feed_forward_proj="gated-gelu", dropout_rate=0.0, layer_norm_epsilon=1e-6, pad_token_id=0,
                     eos_token_id=1, decoder_start_token_id=0)
    with torch.device("cuda"):
        te = UMT5EncoderModel(cfg).eval()
    te = te.to(torch.bfloat16)
    te.save_pretrained(os.path.join(work, "text_encoder"), safe_serialization=True, max_shard_size="5GB")
    del te
    torch.cuda.empty_cache()
    AutoencoderKLWan().save_pretrained(os.path.join(work, "vae"), safe_serialization=True)
    UniPCMultistepScheduler(num_train_timesteps=1000, solver_order=2, prediction_type="flow_prediction",
                            use_flow_sigmas=True, predict_x0=True, solver_type="bh2", lower_order_final=True,
                            final_sigmas_type="zero", timestep_spacing="linspace",
                            flow_shift=3.0).save_pretrained(os.path.join(work, "scheduler"))
    train_tokenizer(os.path.join(work, "tokenizer"))
    with open(os.path.join(work, "model_index.json"), "w") as f:
        json.dump({"_class_name": "WanPipeline", "scheduler": ["diffusers", "UniPCMultistepScheduler"],
                   "text_encoder": ["transformers", "UMT5EncoderModel"], "tokenizer": ["transformers", "T5TokenizerFast"],
                   "transformer": ["diffusers", "WanTransformer3DModel"], "vae": ["diffusers", "AutoencoderKLWan"]}, f)
    print(f"model folder written in {time.time() - t0:.1f} s", flush=True)


class SpmTokenizer:
    """What WanPipeline calls its tokenizer with, on the folder's spiece.model (ids + EOS, padded)."""

    def __init__(self, path):
        import sentencepiece as spm
        self.sp = spm.SentencePieceProcessor(model_file=path)

    def __call__(self, texts, max_length=512, **_):
        ids = torch.zeros(len(texts), max_length, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, t in enumerate(texts):
            e = self.sp.encode(t)[: max_length - 1] + [1]
            ids[i, : len(e)] = torch.tensor(e)
            mask[i, : len(e)] = 1
        return types.SimpleNamespace(input_ids=ids, attention_mask=mask)


def sync_ms(t0):
    torch.cuda.synchronize()
    return (time.time() - t0) * 1000


def run_diffusers(a):
    """2. diffusers' WanPipeline, eager, cuDNN attention."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from transformers import UMT5EncoderModel
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    t_all = time.time()
    tr = WanTransformer3DModel.from_pretrained(os.path.join(a.work, "transformer"), torch_dtype=torch.bfloat16)
    te = UMT5EncoderModel.from_pretrained(os.path.join(a.work, "text_encoder"), dtype=torch.bfloat16)
    vae = AutoencoderKLWan.from_pretrained(os.path.join(a.work, "vae"), torch_dtype=torch.float32)
    sch = UniPCMultistepScheduler.from_pretrained(os.path.join(a.work, "scheduler"))
    pipe = WanPipeline(tokenizer=SpmTokenizer(os.path.join(a.work, "tokenizer", "spiece.model")), text_encoder=te,
                       vae=vae, scheduler=sch, transformer=tr).to("cuda")
    pipe.set_progress_bar_config(disable=True)
    load_ms = sync_ms(t_all)
    r = {"name": "diffusers WanPipeline (eager, cuDNN SDPA)", "load_s": load_ms / 1000}
    # only the DiT's attention is pinned to cuDNN: umT5's biased attention and the VAE's single
    # 384-wide head have no cuDNN kernel, so they keep PyTorch's own choice (as users run them)
    with torch.no_grad():
        t0 = time.time()
        pe, ne = pipe.encode_prompt(PROMPT, NEGATIVE, do_classifier_free_guidance=True, max_sequence_length=512,
                                    device=torch.device("cuda"))
        r["encode_s"] = sync_ms(t0) / 1000
        g = torch.Generator("cuda").manual_seed(0)
        t0 = time.time()
        with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
            lat = pipe(prompt_embeds=pe, negative_prompt_embeds=ne, height=H, width=W, num_frames=a.frames,
                       num_inference_steps=a.steps, guidance_scale=5.0, generator=g, output_type="latent",
                       return_dict=False)[0]
        r["denoise_s"] = sync_ms(t0) / 1000
        t0 = time.time()
        lat = lat.to(vae.dtype)
        mean = torch.tensor(vae.config.latents_mean).view(1, 16, 1, 1, 1).to(lat)
        std = 1.0 / torch.tensor(vae.config.latents_std).view(1, 16, 1, 1, 1).to(lat)
        video = vae.decode(lat / std + mean, return_dict=False)[0]
        r["decode_s"] = sync_ms(t0) / 1000
        r["frames"] = list(video.shape)
    r["total_s"] = time.time() - t_all
    r["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    r["sparsity"] = 0.0
    del pipe, tr, te, vae, lat, video
    torch.cuda.empty_cache()
    return r


def run_longshot(a, name, flags):
    """3. One `longshot generate` run; the figures from its summary."""
    exe = os.environ.get("LONGSHOT", "build/cuda/app/longshot")
    png = f"/tmp/genbench_png_{name}"
    shutil.rmtree(png, ignore_errors=True)
    cache = tempfile.mkdtemp(prefix="genbench_cache_")
    cmd = [exe, "generate", "--model", a.work, "--prompt", PROMPT, "--negative", NEGATIVE, "--frames", str(a.frames),
           "--size", f"{W}x{H}", "--steps", str(a.steps), "--guidance", "5", "--shift", "3", "--sampler", "unipc",
           "--seed", "0", "--device", "cuda", "--no-recall", "--png-dir", png] + flags
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, LONGSHOT_CACHE_DIR=cache))
    wall = time.time() - t0
    shutil.rmtree(cache, ignore_errors=True)
    r = {"name": f"Longshot {name}", "flags": " ".join(flags), "total_s": wall, "exit": p.returncode}
    if p.returncode != 0:
        r["error"] = (p.stderr or p.stdout)[-1500:]
        return r
    out = p.stdout

    def num(pattern):
        m = re.search(pattern, out, re.M)
        return float(m.group(1)) if m else float("nan")
    run_s = num(r"^time\s+([\d.]+) s")
    r["encode_s"] = num(r"text encoding\s+([\d.]+) s")
    r["decode_s"] = num(r"decoding ([\d.]+) s")
    r["denoise_s"] = run_s - r["decode_s"]
    r["attention_s"] = num(r"^attention\s+([\d.]+) s")
    r["peak_gib"] = num(r"peak memory\s+([\d.]+) GiB")
    r["sparsity"] = num(r"mean sparsity\s+([\d.]+)%") / 100
    r["load_s"] = wall - run_s - r["encode_s"]  # loading, noise, process start: what the summary does not time
    r["frames_written"] = len(os.listdir(png)) if os.path.isdir(png) else 0
    shutil.rmtree(png, ignore_errors=True)
    return r


def write_report(res, out):
    with open(os.path.join(out, "generation_bench.json"), "w") as f:
        json.dump(res, f, indent=2)
    rows = res["runs"]
    base = next((r for r in rows if r["name"].startswith("diffusers") and "denoise_s" in r), None)
    lines = [f"GPU {res['gpu']}, torch {res['torch']}, {res['steps']} steps, {W}x{H} x {res['frames']} frames, CFG 5, "
             "random 1.3B weights", "",
             "| run | sparsity | text encoding s | denoising s | decoding s | total s (incl. load) | load s | peak GiB | "
             "denoising vs diffusers |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "denoise_s" not in r:
            lines.append(f"| {r['name']} | failed: {r.get('error', '')[-200:]!r} | | | | | | | |")
            continue
        speed = f"{base['denoise_s'] / r['denoise_s']:.2f}x" if base else ""
        lines.append(f"| {r['name']} | {100 * r['sparsity']:.1f} % | {r['encode_s']:.2f} | {r['denoise_s']:.1f} | "
                     f"{r['decode_s']:.1f} | {r['total_s']:.1f} | {r['load_s']:.1f} | {r['peak_gib']:.2f} | {speed} |")
    with open(os.path.join(out, "generation_bench.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


def main():
    a = parse_args()
    out = os.environ.get("OUT", "gpu-out")
    os.makedirs(out, exist_ok=True)
    t_start = time.time()
    only = [s for s in a.only.split(",") if s]
    path = "/tmp/generation_bench_state.json"  # $OUT is emptied per call; the machine's /tmp is not
    res = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "steps": a.steps, "frames": a.frames,
           "runs": []}
    if os.path.exists(path):  # a later call on the same machine adds its rows to the earlier ones
        res = json.load(open(path))
    make_folder(a.work)
    names = (["diffusers"] if not only or "diffusers" in only else []) + [n for n, _ in RUNS if not only or n in only]
    flags = dict(RUNS)
    for name in names:
        if time.time() - t_start > a.budget:
            print(f"budget: skipped {name}", flush=True)
            continue
        t0 = time.time()
        r = run_diffusers(a) if name == "diffusers" else run_longshot(a, name, flags[name])
        res["runs"] = [x for x in res["runs"] if x["name"] != r["name"]] + [r]
        print(f"{name}: {time.time() - t0:.1f} s", flush=True)
        with open(path, "w") as f:
            json.dump(res, f)
        write_report(res, out)
    sys.exit(0 if all("denoise_s" in r for r in res["runs"]) else 1)


if __name__ == "__main__":
    main()
