#!/usr/bin/python3
"""Write the two folders issue 40 measures the time to the first step on (not a test: a
measurement, see docs/performance.md):
    apt-get install -y python3-pil python3-numpy dataset-fashion-mnist
    /usr/bin/python3 scripts/make_startup_folders.py DIR [SMALL] [PHOTOS]
DIR/small/train/<class>/<i>.png   SMALL (default 200,000) 28x28 gray PNGs, Fashion-MNIST's
                                  60,000 training images over and over
DIR/photos/train/<class>/<i>.jpg  PHOTOS (default 20,000) 500x375 RGB JPEGs (quality 90),
                                  Fashion-MNIST upscaled and tinted by class, with noise
"""
import gzip
import os
import sys

import numpy as np
from PIL import Image

FM = "/usr/share/datasets/fashion-mnist"


def read_idx(name):
    with gzip.open(os.path.join(FM, name)) as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    out = sys.argv[1]
    small = int(sys.argv[2]) if len(sys.argv) > 2 else 200000
    photos = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
    images, labels = read_idx("train-images-idx3-ubyte.gz"), read_idx("train-labels-idx1-ubyte.gz")
    rng = np.random.default_rng(0)
    for i in range(small):
        d = os.path.join(out, "small", "train", str(labels[i % len(labels)]))
        os.makedirs(d, exist_ok=True)
        Image.fromarray(images[i % len(images)]).save(os.path.join(d, f"{i:06d}.png"))
    tints = rng.uniform(0.4, 1.0, size=(10, 3))
    for i in range(photos):
        y = labels[i % len(labels)]
        d = os.path.join(out, "photos", "train", str(y))
        os.makedirs(d, exist_ok=True)
        big = np.asarray(Image.fromarray(images[i % len(images)]).resize((500, 375), Image.BICUBIC), np.float32)
        rgb = big[..., None] * tints[y] + rng.normal(0, 8, size=(375, 500, 3))
        Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(os.path.join(d, f"{i:06d}.jpg"), quality=90)
    print(f"{small} small PNGs and {photos} photos in {out}")


if __name__ == "__main__":
    main()
