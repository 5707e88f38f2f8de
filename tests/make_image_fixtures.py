#!/usr/bin/python3
"""Write tests/fixtures/images/: pictures in the formats people keep (written by PIL, or by
hand where PIL cannot write the format) and the pixels PIL decodes from them, for the format
test of tests/test_data.cpp:
    apt-get install -y python3-pil python3-numpy
    /usr/bin/python3 tests/make_image_fixtures.py
For each picture NAME.EXT: NAME.rgb (height x width x 3 bytes) and NAME.l (height x width)
are what mae::decode_image must give for 3 and 1 channels: PIL's Image.open(..).convert('RGB')
and .convert('L'), except where the manifest says why not (16-bit gray, where PIL's convert
clips to 255 instead of scaling). manifest.json lists, per picture, its size, the largest
difference allowed from these pixels (0: exact) and the reason for any bound.
"""
import json
import os
import struct
import zlib

import numpy as np
from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "images")
W, H = 23, 17  # odd sizes: chroma subsampling and row padding have edges to get wrong


def content(channels, seed, bits=8):
    """Smooth gradients with a sharp-edged block and some noise, in [0, 2^bits)."""
    r = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W]
    planes = []
    for c in range(channels):
        p = (x * (7 + 3 * c) + y * (11 - 2 * c)) / (W * 7 + H * 11) + 0.1 * r.random((H, W))
        p[4:9, 5:12] = 0.9 - 0.3 * c
        planes.append(np.clip(p, 0, 1))
    a = np.stack(planes, axis=-1)
    top = (1 << bits) - 1
    return np.rint(a * top).astype(np.uint16 if bits > 8 else np.uint8)


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png16(path, a):
    """A 16-bit RGB PNG (PIL writes 16-bit gray only), by hand: IHDR, one IDAT, IEND."""
    h, w, _ = a.shape
    raw = b"".join(b"\x00" + a[i].astype(">u2").tobytes() for i in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw)) +
                png_chunk(b"IEND", b""))


def main():
    os.makedirs(OUT, exist_ok=True)
    manifest = []

    def record(name, bound=0, why="", rgb=None, lum=None):
        im = Image.open(os.path.join(OUT, name))
        im.seek(0)
        if rgb is None:
            rgb = np.asarray(im.convert("RGB"))
        if lum is None:
            lum = np.asarray(im.convert("L"))
        stem = os.path.splitext(name)[0]
        with open(os.path.join(OUT, stem + ".rgb"), "wb") as f:
            f.write(np.ascontiguousarray(rgb, dtype=np.uint8).tobytes())
        with open(os.path.join(OUT, stem + ".l"), "wb") as f:
            f.write(np.ascontiguousarray(lum, dtype=np.uint8).tobytes())
        manifest.append({"file": name, "width": im.width, "height": im.height, "pil_mode": im.mode, "bound": bound,
                         "why": why})

    rgb8, gray8, rgba8 = content(3, 1), content(1, 2)[..., 0], content(4, 3)
    rgb_im, gray_im, rgba_im = Image.fromarray(rgb8), Image.fromarray(gray8), Image.fromarray(rgba8)

    # PNG: 8-bit RGB, gray, RGBA, gray + alpha, palette (with and without transparency), 1-bit
    rgb_im.save(os.path.join(OUT, "png_rgb8.png")); record("png_rgb8.png")
    gray_im.save(os.path.join(OUT, "png_gray8.png")); record("png_gray8.png")
    rgba_im.save(os.path.join(OUT, "png_rgba8.png")); record("png_rgba8.png")
    Image.fromarray(np.stack([gray8, rgba8[..., 3]], -1), "LA").save(os.path.join(OUT, "png_gray_alpha.png"))
    record("png_gray_alpha.png")
    pal = rgb_im.quantize(colors=37, method=Image.Quantize.MEDIANCUT)
    pal.save(os.path.join(OUT, "png_palette.png")); record("png_palette.png")
    pal.save(os.path.join(OUT, "png_palette_trns.png"), transparency=5); record("png_palette_trns.png")
    rgb_im.quantize(colors=12).save(os.path.join(OUT, "png_palette_4bit.png"), bits=4)
    record("png_palette_4bit.png")
    gray_im.point(lambda v: 255 if v > 120 else 0).convert("1").save(os.path.join(OUT, "png_1bit.png"))
    record("png_1bit.png")
    # 16-bit: RGB as PIL reads it (the high byte of each sample); gray scaled the same way,
    # where PIL's convert clips the 16-bit values to 255 (a white picture)
    rgb16 = content(3, 4, bits=16)
    write_png16(os.path.join(OUT, "png_rgb16.png"), rgb16)
    record("png_rgb16.png")
    gray16 = content(1, 5, bits=16)[..., 0]
    Image.fromarray(gray16.astype(np.uint16), "I;16").save(os.path.join(OUT, "png_gray16.png"))
    g8 = (gray16 >> 8).astype(np.uint8)
    record("png_gray16.png", 0, "PIL converts I;16 to L by clipping at 255; mae takes the high byte (v >> 8), "
           "as PIL does for 16-bit RGB", rgb=np.stack([g8] * 3, -1), lum=g8)

    # JPEG: baseline 4:2:0 RGB, gray, progressive, 4:4:4, CMYK (Adobe, inverted, as PIL and
    # Photoshop write it)
    rgb_im.save(os.path.join(OUT, "jpeg_rgb.jpg"), quality=90); record("jpeg_rgb.jpg")
    gray_im.save(os.path.join(OUT, "jpeg_gray.jpg"), quality=90); record("jpeg_gray.jpg")
    rgb_im.save(os.path.join(OUT, "jpeg_progressive.jpg"), quality=85, progressive=True)
    record("jpeg_progressive.jpg")
    rgb_im.save(os.path.join(OUT, "jpeg_444.jpg"), quality=95, subsampling=0); record("jpeg_444.jpg")
    Image.fromarray(content(4, 6), "CMYK").save(os.path.join(OUT, "jpeg_cmyk.jpg"), quality=90)
    record("jpeg_cmyk.jpg")

    # WebP: lossy, lossless, lossy with alpha
    rgb_im.save(os.path.join(OUT, "webp_lossy.webp"), quality=80); record("webp_lossy.webp")
    rgb_im.save(os.path.join(OUT, "webp_lossless.webp"), lossless=True); record("webp_lossless.webp")
    rgba_im.save(os.path.join(OUT, "webp_alpha.webp"), quality=80); record("webp_alpha.webp")

    # TIFF: 8-bit RGB (LZW), gray, RGBA, CMYK, 16-bit gray, two pages (the first is read)
    rgb_im.save(os.path.join(OUT, "tiff_rgb8.tif"), compression="tiff_lzw"); record("tiff_rgb8.tif")
    gray_im.save(os.path.join(OUT, "tiff_gray8.tiff")); record("tiff_gray8.tiff")
    rgba_im.save(os.path.join(OUT, "tiff_rgba8.tif")); record("tiff_rgba8.tif")
    Image.fromarray(content(4, 7), "CMYK").save(os.path.join(OUT, "tiff_cmyk.tif")); record("tiff_cmyk.tif")
    t16 = content(1, 8, bits=16)[..., 0]
    Image.fromarray(t16.astype(np.uint16), "I;16").save(os.path.join(OUT, "tiff_gray16.tif"))
    t8 = (t16 >> 8).astype(np.uint8)
    record("tiff_gray16.tif", 0, "PIL converts I;16 to L by clipping at 255; mae takes the high byte (v >> 8), "
           "as libtiff's RGBA interface does", rgb=np.stack([t8] * 3, -1), lum=t8)
    rgb_im.save(os.path.join(OUT, "tiff_pages.tif"), save_all=True, append_images=[gray_im.convert("RGB")])
    record("tiff_pages.tif")

    manifest.sort(key=lambda m: m["file"])
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    print(f"{len(manifest)} pictures in {OUT}")


if __name__ == "__main__":
    main()
