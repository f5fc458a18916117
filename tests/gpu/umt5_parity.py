#!/usr/bin/env python3
"""umT5-XXL parity and timing: Longshot's C++ encoder against transformers' UMT5EncoderModel.

Runs on the GPU machine (python torch + transformers + safetensors; `longshot` built in
build/cuda). Not run by CI. Steps:
  1. transformers UMT5EncoderModel at the full umT5-XXL shape (vocab 256,384, d_model 4096, 64 heads
     x 64, d_ff 10,240, --layers, default 24) with transformers' own T5 init, built on the GPU; every
     weight rounded to bf16 so the bf16 checkpoint holds the fp32 model exactly.
  2. References on the GPU: fp32 (TF32 off) and transformers' own bf16, on token ids [2, 512]:
     row 0 all 512 real tokens, row 1 77 tokens + padding (EOS = 1 last, pad 0).
  3. Saved as the diffusers text_encoder/ layout: bf16 shards + model.safetensors.index.json.
     Unless --no-extra: the first --extra-layers layers (default 2; 24 = full depth) at full width also as Wan's .pth (torch.save,
     wan/modules/t5.py names) and as a ComfyUI scaled-fp8 file (e4m3fn bits + scale_weight).
  4. `longshot encode-text --ids` on the same ids: GPU bf16 (load time, encode time, peak GPU
     memory), CPU fp32 with all cores (parity), one prompt on 2 CPU cores (taskset, time only).
  5. Relative L2 errors over the real tokens; padded rows must be exactly zero in our output.
Acceptance (issue 18): CPU fp32 rel. L2 <= 1e-4; GPU bf16 error <= 2x transformers' own
bf16-vs-fp32 error. Results: $OUT/umt5_parity.json and $OUT/umt5_parity.md.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import torch


def rel_l2(a, b, mask):
    m = mask.bool().unsqueeze(-1).to(a.device)
    a = a.double().masked_select(m)
    b = b.double().to(a.device).masked_select(m)
    return float((a - b).norm() / b.norm())


def run_ours(longshot, args, env=None, prefix=None):
    cmd = (prefix or []) + [longshot, "encode-text"] + args
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.time() - t0
    if p.returncode != 0:
        print(p.stdout, p.stderr, file=sys.stderr)
        raise RuntimeError(f"longshot encode-text failed ({p.returncode}): {' '.join(cmd)}: {p.stderr.strip()[-400:]}")
    line = [l for l in p.stdout.splitlines() if l.startswith("{")][-1]
    r = json.loads(line)
    r["wall_s"] = wall
    return r


def load_out(path):
    from safetensors.torch import load_file
    return load_file(path)["last_hidden_state"]


N1 = 77  # real tokens of the second row (the rest is padding)
EXTRA_LAYOUTS = ("wan_pth", "wan_pth_state_dict", "comfy_fp8_scaled")


def parse_args():
    ap = argparse.ArgumentParser()
    ap.add_argument("--longshot", default="build/cuda/app/longshot")
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--work", default="/tmp/umt5_parity")
    ap.add_argument("--no-extra", action="store_true", help="skip the .pth and fp8 layouts")
    ap.add_argument("--extra-layers", type=int, default=2,
                    help="layers of the .pth / fp8 layout checks (full width; default 2 for time, 24 = full depth)")
    ap.add_argument("--no-cpu", action="store_true", help="skip the CPU runs")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--budget", type=float, default=float(os.environ.get("UMT5_BUDGET_S", 200)),
                    help="seconds after which optional stages (2-core timing, extra layouts) are skipped")
    return ap.parse_args()


def make_cfg(layers):
    from transformers import UMT5Config
    return UMT5Config(vocab_size=256384, d_model=4096, d_kv=64, num_heads=64, d_ff=10240, num_layers=layers,
                      num_decoder_layers=layers, relative_attention_num_buckets=32,
                      relative_attention_max_distance=128, feed_forward_proj="gated-gelu", dropout_rate=0.0,
                      layer_norm_epsilon=1e-6, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)


def build_model(a, dev, res):
    """1. The model, on the GPU, transformers' init; weights rounded to bf16."""
    from transformers import UMT5EncoderModel
    t0 = time.time()
    cfg = make_cfg(a.layers)
    torch.manual_seed(0)
    with torch.device(dev):
        model = UMT5EncoderModel(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())
            if p.dim() == 1:  # norms init to ones: give them some spread (still bf16-exact)
                p.mul_(1 + 0.1 * torch.randn_like(p)).copy_(p.to(torch.bfloat16).float())
    res["timings"]["build_model_s"] = time.time() - t0
    print(f"model built ({a.layers} layers) in {time.time() - t0:.1f} s", flush=True)
    return model


def make_ids(work):
    """2a. Token ids [2, 512] and their mask, saved for `longshot encode-text --ids` (both rows, and row 1 alone)."""
    from safetensors.torch import save_file
    g = torch.Generator().manual_seed(1)
    L = 512
    ids = torch.zeros(2, L, dtype=torch.long)
    mask = torch.zeros(2, L, dtype=torch.long)
    ids[0] = torch.randint(3, 256000, (L,), generator=g)
    ids[0, -1] = 1
    mask[0] = 1
    n1 = N1
    ids[1, :n1] = torch.randint(3, 256000, (n1,), generator=g)
    ids[1, n1 - 1] = 1
    mask[1, :n1] = 1
    save_file({"input_ids": ids, "attention_mask": mask}, f"{work}/ids.safetensors")
    save_file({"input_ids": ids[1:, :].contiguous(), "attention_mask": mask[1:, :].contiguous()},
              f"{work}/ids_one.safetensors")
    return ids, mask


def extra_n(a):
    """Layers of the extra layout checks: --extra-layers, at most the model's."""
    return max(1, min(a.extra_layers, a.layers))


def extra_key(name):
    """Result key of one extra layout (the layer count is res["extra_layers"])."""
    return f"ours_{name}_extra_gpu_fp32"


def references(model, a, dev, ids, mask, res):
    """2b. The fp32 reference (TF32 off) and transformers' own bf16 (timed); the model ends in bf16.
    Returns (model, ref32, refbf, state32: the first --extra-layers layers' fp32 weights, None with --no-extra)."""
    with torch.no_grad():
        ref32 = model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).last_hidden_state.float().cpu()
        state32 = None
        if not a.no_extra:  # the first --extra-layers layers' fp32 weights for the extra layouts
            keep = ("shared.", "encoder.final_layer_norm.") + tuple(f"encoder.block.{i}." for i in range(extra_n(a)))
            state32 = {k: v.detach().clone() for k, v in model.state_dict().items() if k.startswith(keep)}
        model = model.to(torch.bfloat16)
        torch.cuda.synchronize()
        t0 = time.time()
        for _ in range(a.reps):
            refbf = model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).last_hidden_state
        torch.cuda.synchronize()
        res["timings"]["transformers_bf16_gpu_encode_s"] = (time.time() - t0) / a.reps
        refbf = refbf.float().cpu()
    res["transformers_bf16_vs_fp32"] = rel_l2(refbf, ref32, mask)
    print(f"transformers bf16 vs fp32: {res['transformers_bf16_vs_fp32']:.3e}", flush=True)
    return model, ref32, refbf, state32


def ours_gpu(a, te, ref32, refbf, mask, res, dump):
    """4. Ours on the GPU in bf16: parity on [2, 512], then one prompt (the pipeline's case). Returns the first run."""
    n1 = N1
    gpu = run_ours(a.longshot, ["--text-encoder", te, "--ids", f"{a.work}/ids.safetensors", "--device", "cuda",
                                "--dtype", "bf16", "--reps", str(a.reps), "--out", f"{a.work}/ours_gpu_bf16.safetensors"])
    ours_bf = load_out(f"{a.work}/ours_gpu_bf16.safetensors")
    res["ours_gpu_bf16"] = gpu
    res["ours_gpu_bf16_vs_fp32"] = rel_l2(ours_bf, ref32, mask)
    res["ours_gpu_bf16_vs_transformers_bf16"] = rel_l2(ours_bf, refbf, mask)
    res["padding_zero_gpu"] = bool((ours_bf[1, n1:] == 0).all())
    print(f"ours GPU bf16 vs fp32: {res['ours_gpu_bf16_vs_fp32']:.3e} (load {gpu['load_s']:.1f} s, "
          f"encode {gpu['encode_s'] * 1e3:.1f} ms, peak {gpu.get('peak_gpu_gb', -1):.2f} GB)", flush=True)
    dump()
    # One prompt (77 tokens) on the GPU, the pipeline's case.
    res["ours_gpu_bf16_one_prompt"] = run_ours(a.longshot, ["--text-encoder", te, "--ids", f"{a.work}/ids_one.safetensors",
                                                            "--device", "cuda", "--dtype", "bf16", "--reps", str(a.reps)])
    return gpu


def ours_cpu(a, te, ref32, mask, res, dump, t_start):
    """5. Ours on the CPU: fp32 with all cores (parity), and one prompt on 2 cores (time)."""
    n1 = N1
    cpu = run_ours(a.longshot, ["--text-encoder", te, "--ids", f"{a.work}/ids.safetensors", "--device", "cpu",
                                "--dtype", "fp32", "--out", f"{a.work}/ours_cpu_fp32.safetensors"])
    ours32 = load_out(f"{a.work}/ours_cpu_fp32.safetensors")
    res["ours_cpu_fp32"] = cpu
    res["ours_cpu_fp32_vs_fp32"] = rel_l2(ours32, ref32, mask)
    res["padding_zero_cpu"] = bool((ours32[1, n1:] == 0).all())
    print(f"ours CPU fp32 vs fp32: {res['ours_cpu_fp32_vs_fp32']:.3e} (load {cpu['load_s']:.1f} s, "
          f"encode {cpu['encode_s']:.1f} s, {cpu['threads']} threads)", flush=True)
    dump()
    env = dict(os.environ, LONGSHOT_THREADS="2", OMP_NUM_THREADS="2")
    for dt in ("fp32", "bf16"):
        if time.time() - t_start > a.budget:
            res.setdefault("skipped", []).append(f"cpu2_{dt} (budget)")
            continue  # bf16 on the CPU: half the memory, and fast where the CPU has AMX
        r = run_ours(a.longshot, ["--text-encoder", te, "--ids", f"{a.work}/ids_one.safetensors", "--device", "cpu",
                                  "--dtype", dt, "--out", f"{a.work}/ours_cpu2_{dt}.safetensors"],
                     env=env, prefix=["taskset", "-c", "0,1"])
        r["rel_l2_vs_transformers_fp32"] = rel_l2(load_out(f"{a.work}/ours_cpu2_{dt}.safetensors")[0], ref32[1], mask[1])
        res[f"ours_cpu2_{dt}_one_prompt"] = r
        print(f"ours CPU {dt}, 2 cores, one prompt of {n1} tokens: load {r['load_s']:.1f} s, encode {r['encode_s']:.1f} s, "
              f"rel L2 {r['rel_l2_vs_transformers_fp32']:.2e}", flush=True)
        dump()


def wan_layout(state32):
    """The extra layouts' layers under Wan's wan/modules/t5.py names, in bf16 on the host."""
    wan_names = {"layer.0.SelfAttention.q.weight": "attn.q.weight", "layer.0.SelfAttention.k.weight": "attn.k.weight",
                 "layer.0.SelfAttention.v.weight": "attn.v.weight", "layer.0.SelfAttention.o.weight": "attn.o.weight",
                 "layer.0.SelfAttention.relative_attention_bias.weight": "pos_embedding.embedding.weight",
                 "layer.0.layer_norm.weight": "norm1.weight", "layer.1.DenseReluDense.wi_0.weight": "ffn.gate.0.weight",
                 "layer.1.DenseReluDense.wi_1.weight": "ffn.fc1.weight", "layer.1.DenseReluDense.wo.weight": "ffn.fc2.weight",
                 "layer.1.layer_norm.weight": "norm2.weight"}
    wan = {}
    for k, v in state32.items():
        if k == "shared.weight":
            wan["token_embedding.weight"] = v
        elif k == "encoder.final_layer_norm.weight":
            wan["norm.weight"] = v
        elif k.startswith("encoder.block."):
            i, rest = k[len("encoder.block."):].split(".", 1)
            wan[f"blocks.{i}.{wan_names[rest]}"] = v
    return {k: v.to(torch.bfloat16).cpu() for k, v in wan.items()}


def comfy_fp8_layout(state32):
    """ComfyUI scaled fp8: linear weights as e4m3fn bits + per-tensor scale_weight; the embedding fp8
    without a scale (as the plain fp8_e4m3fn files); a scaled_fp8 marker. Returns (file tensors,
    the dequantised fp32 weights the reference runs with)."""
    fp8, deq = {"scaled_fp8": torch.empty(0, dtype=torch.float8_e4m3fn)}, {}
    for k, v in state32.items():
        if k.endswith("layer_norm.weight") or "relative_attention_bias" in k:
            fp8[k] = v.cpu()
            deq[k] = v
        elif k == "shared.weight":
            bits = v.to(torch.float8_e4m3fn)
            fp8[k] = bits.cpu()
            deq[k] = bits.float()
        else:
            scale = (v.abs().max() / 448.0).float()
            bits = (v / scale).to(torch.float8_e4m3fn)
            fp8[k] = bits.cpu()
            fp8[k[:-len("weight")] + "scale_weight"] = scale.reshape(()).cpu()
            deq[k] = bits.float() * scale
    return fp8, deq


def extra_layouts(a, dev, ids, mask, state32, res, dump):
    """6. Extra layouts at --extra-layers layers (default 2), full width: Wan .pth (plain and as state_dict() pickles it) and
    ComfyUI scaled fp8, each against transformers on the same weights."""
    import collections
    from safetensors.torch import save_file
    from transformers import UMT5EncoderModel
    t0 = time.time()
    res["extra_layers"] = extra_n(a)
    with torch.device(dev):
        small = UMT5EncoderModel(make_cfg(extra_n(a))).eval()
    small.load_state_dict({k: v for k, v in state32.items()}, strict=False)
    wan_bf16 = wan_layout(state32)
    torch.save(wan_bf16, f"{a.work}/wan_{extra_n(a)}layers.pth")
    # As `module.state_dict()` pickles: an OrderedDict carrying a _metadata attribute (BUILD).
    sd = collections.OrderedDict(wan_bf16)
    sd._metadata = collections.OrderedDict([("", {"version": 1})])
    torch.save(sd, f"{a.work}/wan_{extra_n(a)}layers_state_dict.pth")
    with torch.no_grad():
        ref_small = small(input_ids=ids.to(dev), attention_mask=mask.to(dev)).last_hidden_state.float().cpu()
    fp8, deq = comfy_fp8_layout(state32)
    save_file(fp8, f"{a.work}/umt5_{extra_n(a)}layers_fp8_e4m3fn_scaled.safetensors")
    small.load_state_dict(deq, strict=False)
    with torch.no_grad():
        ref_fp8 = small(input_ids=ids.to(dev), attention_mask=mask.to(dev)).last_hidden_state.float().cpu()
    del small
    torch.cuda.empty_cache()
    res["timings"]["extra_layouts_s"] = time.time() - t0
    for name, path, ref in [("wan_pth", f"{a.work}/wan_{extra_n(a)}layers.pth", ref_small),
                            ("wan_pth_state_dict", f"{a.work}/wan_{extra_n(a)}layers_state_dict.pth", ref_small),
                            ("comfy_fp8_scaled", f"{a.work}/umt5_{extra_n(a)}layers_fp8_e4m3fn_scaled.safetensors", ref_fp8)]:
        try:
            r = run_ours(a.longshot, ["--text-encoder", path, "--ids", f"{a.work}/ids.safetensors", "--device", "cuda",
                                      "--dtype", "fp32", "--out", f"{a.work}/ours_{name}.safetensors"])
        except RuntimeError as e:  # one layout failing must not hide the others
            res[extra_key(name)] = {"error": str(e), "rel_l2_vs_transformers_fp32": float("inf")}
            print(f"{name}: FAILED: {e}", flush=True)
            dump()
            continue
        r["rel_l2_vs_transformers_fp32"] = rel_l2(load_out(f"{a.work}/ours_{name}.safetensors"), ref, mask)
        res[extra_key(name)] = r
        print(f"{name} ({extra_n(a)} layers, GPU fp32): rel L2 {r['rel_l2_vs_transformers_fp32']:.3e}, load {r['load_s']:.1f} s",
              flush=True)
        dump()


def verdict(res):
    """7a. The acceptance checks (issue 18) from what ran."""
    checks = {"gpu_bf16_within_2x_transformers": res["ours_gpu_bf16_vs_fp32"] <= 2 * res["transformers_bf16_vs_fp32"],
              "padding_zero_gpu": res["padding_zero_gpu"]}
    if "ours_cpu_fp32_vs_fp32" in res:
        checks["cpu_fp32_rel_l2_le_1e-4"] = res["ours_cpu_fp32_vs_fp32"] <= 1e-4
        checks["padding_zero_cpu"] = res["padding_zero_cpu"]
    for name in EXTRA_LAYOUTS:
        k = extra_key(name)
        if k in res:
            checks[f"{name}_rel_l2_le_1e-4"] = res[k]["rel_l2_vs_transformers_fp32"] <= 1e-4
    return checks


def report_lines(a, res, gpu, checks):
    """7b. The Markdown report."""
    n1 = N1
    g1 = res["ours_gpu_bf16_one_prompt"]
    lines = [
        f"# umT5-XXL parity ({a.layers} layers, full width) — {res['gpu']}, torch {res['torch']}, transformers {res['transformers']}",
        "",
        "| measure | value |",
        "|---|---|",
        f"| transformers bf16 vs fp32 (rel. L2, real tokens) | {res['transformers_bf16_vs_fp32']:.3e} |",
        f"| Longshot GPU bf16 vs transformers fp32 | {res['ours_gpu_bf16_vs_fp32']:.3e} "
        f"({res['ours_gpu_bf16_vs_fp32'] / res['transformers_bf16_vs_fp32']:.2f}x transformers' own) |",
    ]
    if "ours_cpu_fp32_vs_fp32" in res:
        c = res["ours_cpu_fp32"]
        lines += [f"| Longshot CPU fp32 vs transformers fp32 | {res['ours_cpu_fp32_vs_fp32']:.3e} |",
                  f"| CPU fp32 load (bf16 shards → fp32), {c['threads']} threads | {c['load_s']:.1f} s |",
                  f"| CPU fp32 encode [2, 512], {c['threads']} threads | {c['encode_s']:.2f} s |",
                  f"| CPU fp32 peak RSS | {c['peak_rss_gb']:.1f} GB |"]
        for dt in ("fp32", "bf16"):
            r = res.get(f"ours_cpu2_{dt}_one_prompt")
            if r:
                lines.append(f"| CPU {dt}, 2 cores: load / encode one prompt ({n1} tokens) / rel. L2 vs fp32 | {r['load_s']:.1f} s / "
                             f"{r['encode_s']:.2f} s / {r['rel_l2_vs_transformers_fp32']:.2e} |")
    lines += [f"| GPU bf16 load (sharded bf16, page cache warm) | {gpu['load_s']:.1f} s |",
              f"| GPU bf16 encode [2, 512] (median of {a.reps}) | {gpu['encode_s'] * 1e3:.1f} ms |",
              f"| GPU bf16 encode one prompt ({n1} tokens) | {g1['encode_s'] * 1e3:.1f} ms |",
              f"| GPU peak allocated (weights + activations) | {gpu.get('peak_gpu_gb', float('nan')):.2f} GB |",
              f"| transformers bf16 encode [2, 512] on the GPU | {res['timings']['transformers_bf16_gpu_encode_s'] * 1e3:.1f} ms |"]
    for name in EXTRA_LAYOUTS:
        k = extra_key(name)
        if k in res:
            lines.append(f"| {name} (first {res.get('extra_layers', 2)} layers, GPU fp32) vs transformers fp32 | {res[k]['rel_l2_vs_transformers_fp32']:.3e} |")
    lines += ["", "Checks: " + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in checks.items()),
              "Skipped: " + (", ".join(res.get("skipped", [])) or "nothing"),
              f"Total script time {res['timings']['total_s']:.0f} s."]
    return lines


def main():
    a = parse_args()
    out_dir = os.environ.get("OUT", "gpu-out")
    os.makedirs(out_dir, exist_ok=True)
    t_start = time.time()
    import transformers

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    dev = torch.device("cuda")
    res = {"torch": torch.__version__, "transformers": transformers.__version__,
           "gpu": torch.cuda.get_device_name(0), "layers": a.layers, "timings": {}}

    def dump():  # after every stage, so a run cut short by its time limit still reports
        with open(os.path.join(out_dir, "umt5_parity.json"), "w") as f:
            json.dump(res, f, indent=2)

    model = build_model(a, dev, res)
    # 2. Token ids and references.
    ids, mask = make_ids(a.work)
    model, ref32, refbf, state32 = references(model, a, dev, ids, mask, res)
    dump()

    # 3. The diffusers text_encoder/ layout: bf16 shards + index.
    t0 = time.time()
    te = f"{a.work}/text_encoder"
    model.save_pretrained(te, safe_serialization=True, max_shard_size="5GB")
    res["timings"]["save_sharded_s"] = time.time() - t0
    res["sharded_files"] = sorted(os.listdir(te))
    del model
    torch.cuda.empty_cache()
    print(f"saved {res['sharded_files']} in {time.time() - t0:.1f} s", flush=True)
    dump()

    gpu = ours_gpu(a, te, ref32, refbf, mask, res, dump)
    if not a.no_cpu:
        ours_cpu(a, te, ref32, mask, res, dump, t_start)
    if state32 is not None and time.time() - t_start > a.budget:
        res.setdefault("skipped", []).append("extra layouts (budget)")
    elif state32 is not None:
        extra_layouts(a, dev, ids, mask, state32, res, dump)

    checks = verdict(res)
    res["checks"] = checks
    res["pass"] = all(checks.values())
    res["timings"]["total_s"] = time.time() - t_start
    dump()
    lines = report_lines(a, res, gpu, checks)
    with open(os.path.join(out_dir, "umt5_parity.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    shutil.rmtree(a.work, ignore_errors=True)
    return 0 if res["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
