#!/usr/bin/env python3
"""PSNR between two folders of frame_%05d.png (8-bit RGB, as `longshot generate --png-dir` writes).

The figure is ffmpeg's psnr filter "average": 10·log10(255² / MSE) with the MSE over every frame,
pixel and channel (all frames have one size). tools/eval_regimes.sh uses ffmpeg when it is there and
this script otherwise (the GPU machine has python3 with torch/torchvision but maybe no ffmpeg).
Decoders, fastest first: torchvision.io, PIL + numpy, then a plain-Python PNG decoder (zlib and the
five PNG row filters; slow but dependency-free). Prints the PSNR in dB ("inf" when identical).
usage: psnr_frames.py DIR_A DIR_B [--decoder auto|torchvision|pil|python]
"""
import argparse
import glob
import math
import os
import struct
import sys
import zlib


def decode_python(path):
    """RGB bytes of an 8-bit, non-interlaced RGB or RGBA PNG (alpha dropped)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG")
    pos, idat, width = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or colour not in (2, 6) or interlace:
                raise ValueError(f"{path}: only 8-bit non-interlaced RGB/RGBA PNGs are read here")
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if width is None:
        raise ValueError(f"{path}: no IHDR chunk")
    raw = zlib.decompress(b"".join(idat))
    stride, bpp = width * channels, channels
    out = bytearray(height * stride)
    prev = bytearray(stride)
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if ftype == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif ftype == 2:
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 255
        elif ftype == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif ftype == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
        elif ftype != 0:
            raise ValueError(f"{path}: row {y} has unknown filter {ftype}")
        out[y * stride:(y + 1) * stride] = line
        prev = line
    if channels == 4:
        out = bytearray(b for i, b in enumerate(out) if i % 4 != 3)
    return (width, height), bytes(out)


def squared_error(decoder):
    """A function (path_a, path_b) -> (sum of squared differences, values compared)."""
    if decoder in ("auto", "torchvision"):
        try:
            import torch
            from torchvision.io import ImageReadMode, read_image

            def tv(a, b):
                x = read_image(a, ImageReadMode.RGB).to(torch.int64)
                y = read_image(b, ImageReadMode.RGB).to(torch.int64)
                if x.shape != y.shape:
                    raise ValueError(f"{a} and {b} differ in size: {tuple(x.shape)} vs {tuple(y.shape)}")
                return int(((x - y) ** 2).sum()), x.numel()
            return tv
        except ImportError:
            if decoder == "torchvision":
                raise
    if decoder in ("auto", "pil"):
        try:
            import numpy as np
            from PIL import Image

            def pil(a, b):
                x = np.asarray(Image.open(a).convert("RGB"), dtype=np.int64)
                y = np.asarray(Image.open(b).convert("RGB"), dtype=np.int64)
                if x.shape != y.shape:
                    raise ValueError(f"{a} and {b} differ in size: {x.shape} vs {y.shape}")
                return int(((x - y) ** 2).sum()), x.size
            return pil
        except ImportError:
            if decoder == "pil":
                raise

    def plain(a, b):
        (sa, x), (sb, y) = decode_python(a), decode_python(b)
        if sa != sb:
            raise ValueError(f"{a} and {b} differ in size: {sa} vs {sb}")
        return sum((p - q) * (p - q) for p, q in zip(x, y)), len(x)
    return plain


def main(argv):
    ap = argparse.ArgumentParser(description="PSNR between two folders of frame_%05d.png")
    ap.add_argument("dir_a")
    ap.add_argument("dir_b")
    ap.add_argument("--decoder", choices=("auto", "torchvision", "pil", "python"), default="auto")
    args = ap.parse_args(argv)
    frames_a = sorted(glob.glob(os.path.join(args.dir_a, "frame_*.png")))
    frames_b = sorted(glob.glob(os.path.join(args.dir_b, "frame_*.png")))
    if not frames_a or len(frames_a) != len(frames_b):
        sys.exit(f"psnr_frames.py: {len(frames_a)} frames in '{args.dir_a}' and {len(frames_b)} in '{args.dir_b}'")
    err = squared_error(args.decoder)
    total, count = 0, 0
    for a, b in zip(frames_a, frames_b):
        if os.path.basename(a) != os.path.basename(b):
            sys.exit(f"psnr_frames.py: frame names differ: {a} vs {b}")
        s, n = err(a, b)
        total, count = total + s, count + n
    mse = total / count
    print("inf" if mse == 0 else f"{10 * math.log10(255 * 255 / mse):.6f}")


if __name__ == "__main__":
    main(sys.argv[1:])
