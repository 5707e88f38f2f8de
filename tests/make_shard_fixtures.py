#!/usr/bin/python3
"""Write tests/fixtures/shards/: WebDataset tar shards written by Python's tarfile (not by mae),
for the shard tests of tests/test_shards.cpp:
    /usr/bin/python3 tests/make_shard_fixtures.py
The images are the pictures of tests/fixtures/images (every format mae reads), byte for byte,
so a test can check that an image read from a shard is the file's image.

  good/train/train-00000{0,1,2}.tar  the 24 pictures, 8 per shard: KEY.EXT, KEY.cls (label
                                     k % 3), KEY.json (skipped); shard 1 in PAX format with a
                                     long directory name, shard 2 in GNU format
  good/val/val-000000.tar            6 of them again, labels 0..2
  good/classes.txt                   the 3 class names
  unlabelled/u-000000.tar            5 pictures without .cls (pretraining takes them)
  bad/not_a_tar.tar                  text
  bad/truncated.tar                  a good shard cut in the middle of a member
  bad/no_image.tar                   a sample of .cls and .json only
  bad/compressed.tar.gz              a good shard, gzipped
  bad/corrupt_image.tar              a .png member that is not a PNG
  bad/no_label.tar                   labelled samples but one without .cls
  bad_label/b-000000.tar             a label of 5, with classes.txt naming 3 classes
manifest.json lists each good shard's samples in order: key, picture, label.
"""
import gzip
import io
import json
import os
import shutil
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGES = os.path.join(HERE, "fixtures", "images")
OUT = os.path.join(HERE, "fixtures", "shards")
CLASSES = ["cat", "dog", "bird"]


def pictures():
    with open(os.path.join(IMAGES, "manifest.json")) as f:
        return [e["file"] for e in json.load(f)]


def add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 1700000000
    tar.addfile(info, io.BytesIO(data))


def read(picture):
    with open(os.path.join(IMAGES, picture), "rb") as f:
        return f.read()


def write_shard(path, samples, fmt=tarfile.USTAR_FORMAT, labelled=True, extra=True):
    """samples: (key, picture, label); returns the manifest rows"""
    rows = []
    with tarfile.open(path, "w", format=fmt) as tar:
        for key, picture, label in samples:
            ext = picture.rsplit(".", 1)[1]
            add(tar, key + "." + ext, read(picture))
            if labelled and label is not None:
                add(tar, key + ".cls", b"%d\n" % label)
            if extra:
                add(tar, key + ".json", json.dumps({"picture": picture}).encode())
            rows.append({"key": key, "picture": picture, "label": label if labelled else -1})
    return rows


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    for d in ["good/train", "good/val", "unlabelled", "bad", "bad_label"]:
        os.makedirs(os.path.join(OUT, d))
    pics = pictures()
    assert len(pics) >= 24, len(pics)
    manifest = {}
    formats = [tarfile.USTAR_FORMAT, tarfile.PAX_FORMAT, tarfile.GNU_FORMAT]
    for s in range(3):
        samples = []
        for k in range(8 * s, 8 * s + 8):
            stem = pics[k].rsplit(".", 1)[0]
            key = ("a" * 120 + "/" if s == 1 else "") + "s%02d_%s" % (k, stem)
            samples.append((key, pics[k], k % 3))
        name = "good/train/train-%06d.tar" % s
        manifest[name] = write_shard(os.path.join(OUT, name), samples, formats[s])
    val = [("v%02d" % k, pics[k * 4], k % 3) for k in range(6)]
    manifest["good/val/val-000000.tar"] = write_shard(os.path.join(OUT, "good/val/val-000000.tar"), val)
    with open(os.path.join(OUT, "good/classes.txt"), "w") as f:
        f.write("\n".join(CLASSES) + "\n")
    manifest["unlabelled/u-000000.tar"] = write_shard(
        os.path.join(OUT, "unlabelled/u-000000.tar"), [("u%d" % k, pics[k], None) for k in range(5)], labelled=False)

    with open(os.path.join(OUT, "bad/not_a_tar.tar"), "w") as f:
        f.write("these are notes, not a tar archive\n" * 20)
    good = open(os.path.join(OUT, "good/train/train-000000.tar"), "rb").read()
    with open(os.path.join(OUT, "bad/truncated.tar"), "wb") as f:
        f.write(good[: len(good) // 2 + 100])
    with open(os.path.join(OUT, "bad/compressed.tar.gz"), "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
            f.write(good)
    with tarfile.open(os.path.join(OUT, "bad/no_image.tar"), "w", format=tarfile.USTAR_FORMAT) as tar:
        add(tar, "a.png", read(pics[0]))
        add(tar, "a.cls", b"0")
        add(tar, "b.cls", b"1")
        add(tar, "b.json", b"{}")
    with tarfile.open(os.path.join(OUT, "bad/corrupt_image.tar"), "w", format=tarfile.USTAR_FORMAT) as tar:
        add(tar, "a.png", read("png_rgb8.png"))
        add(tar, "b.png", b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    write_shard(os.path.join(OUT, "bad/no_label.tar"), [("a", pics[0], 0), ("b", pics[1], None), ("c", pics[2], 2)])
    write_shard(os.path.join(OUT, "bad_label/b-000000.tar"), [("a", pics[0], 0), ("b", pics[1], 5)])
    with open(os.path.join(OUT, "bad_label/classes.txt"), "w") as f:
        f.write("\n".join(CLASSES) + "\n")
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
