"""Writes data/testdata/images/: small JPEG and PNG files and goldens.pt, the
reference outputs (PIL, torchvision.io and torchvision.transforms.v2) that
image_codec_test and image_transforms_test compare slimfit against.

  bazel run //third_party:python_run -- data/testdata/make_image_goldens.py

goldens.pt is torch.save of a list of uint8 CHW tensors, in the order of
GOLDENS below (the C++ tests index it by the same names, in the same order).
"""
import io
import os
import sys

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "images")


def pil_chw(img):
    return torch.from_numpy(np.array(img)).reshape(img.size[1], img.size[0], -1).permute(2, 0, 1).contiguous()


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(7)
    h, w = 37, 53
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    base = torch.stack([xx * 255 // (w - 1), yy * 255 // (h - 1), (xx + yy) * 3 % 256])
    noise = torch.randint(-20, 21, (3, h, w), generator=g)
    rgb = (base + noise).clamp(0, 255).to(torch.uint8)
    hwc = rgb.permute(1, 2, 0).numpy()
    Image.fromarray(hwc, "RGB").save(os.path.join(OUT, "rgb.png"))
    Image.fromarray(hwc, "RGB").save(os.path.join(OUT, "rgb.jpg"), quality=90)
    gray = Image.fromarray(hwc, "RGB").convert("L")
    gray.save(os.path.join(OUT, "gray.png"))
    gray.save(os.path.join(OUT, "gray.jpg"), quality=90)
    alpha = (torch.arange(h * w).reshape(h, w) % 256).to(torch.uint8).numpy()[..., None]
    Image.fromarray(np.concatenate([hwc, alpha], axis=2), "RGBA").save(os.path.join(OUT, "rgba.png"))
    Image.fromarray(hwc, "RGB").quantize(colors=16).save(os.path.join(OUT, "palette.png"))
    # A 16-bit PNG: slimfit refuses it (Unimplemented).
    Image.fromarray(alpha[..., 0].astype(np.uint16) * 257).save(os.path.join(OUT, "gray16.png"))

    def load(name, mode="RGB"):
        return Image.open(os.path.join(OUT, name)).convert(mode)

    with open(os.path.join(OUT, "rgb.jpg"), "rb") as f:
        jpg = torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)
    png_rgb = pil_chw(load("rgb.png"))
    goldens = [
        ("png_rgb", png_rgb),
        ("jpeg_rgb_torchvision", decode_jpeg(jpg, mode=ImageReadMode.RGB)),
        ("jpeg_rgb_pil", pil_chw(load("rgb.jpg"))),
        ("png_rgb_as_gray_pil", pil_chw(load("rgb.png", "L"))),
        ("jpeg_rgb_as_gray_torchvision", decode_jpeg(jpg, mode=ImageReadMode.GRAY)),
        ("png_rgba_pil", pil_chw(load("rgba.png"))),
        ("png_palette_pil", pil_chw(load("palette.png"))),
        ("png_gray_as_rgb_pil", pil_chw(load("gray.png"))),
        ("resize_24", F.resize(png_rgb, 24, antialias=True)),
        ("resize_80", F.resize(png_rgb, 80, antialias=True)),
        ("center_crop_20", F.center_crop(png_rgb, [20, 20])),
        ("center_crop_48x60", F.center_crop(png_rgb, [48, 60])),
        ("resized_crop_3_5_20_30_to_16", F.resized_crop(png_rgb, 3, 5, 20, 30, [16, 16], antialias=True)),
        ("resize_24_pil", pil_chw(v2.Resize(24)(load("rgb.png")))),
    ]
    torch.save([t.contiguous() for _, t in goldens], os.path.join(OUT, "goldens.pt"))
    with open(os.path.join(OUT, "goldens.txt"), "w") as f:
        f.write(f"# torch {torch.__version__}, torchvision {torchvision.__version__}, PIL {Image.__version__}\n")
        for i, (name, t) in enumerate(goldens):
            f.write(f"{i} {name} {list(t.shape)}\n")
    print(open(os.path.join(OUT, "goldens.txt")).read(), end="")


if __name__ == "__main__":
    sys.exit(main())
