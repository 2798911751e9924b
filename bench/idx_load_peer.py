"""The peer for bench/idx_load_bench: loading the same IDX files in Python (gzip + numpy + torch)."""
import gzip
import statistics
import sys
import time

import numpy as np
import torch

images = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
labels = sys.argv[2] if len(sys.argv) > 2 else "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz"


def load(path, offset):
    with gzip.open(path, "rb") as f:
        return torch.from_numpy(np.frombuffer(f.read(), dtype=np.uint8, offset=offset).copy())


times = []
for _ in range(7):
    start = time.perf_counter()
    x = load(images, 16).view(-1, 28, 28)
    y = load(labels, 8).long()
    times.append(time.perf_counter() - start)
print(f"idx_load python: {x.shape[0]} examples in {statistics.median(times):.3f} s (median of 7, min {min(times):.3f} s)")
