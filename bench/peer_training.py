"""The PyTorch peer for bench/training_bench: the same five training jobs, written the way a competent
PyTorch user would write them (whole data set as one float tensor, batches cut from a shuffled index,
nn.Linear and nn.Conv2d layers, torch.optim.Adam, BCE-with-logits where the output is a sigmoid).

Usage: peer_training.py CASE [--samples N] [--tuned] [--device cpu|cuda] [--batch-size B]
  CASE: denoising_layer | greedy_stack | small_relu | finetune | conv_autoencoder
  --tuned: every intra-op thread of the machine and denormals flushed; the driver (bench/run) also
           sets the OpenBLAS kernel and glibc allocator thresholds in the environment for this run.
  --device cuda: data set and model on the GPU (scripts/device-check); --batch-size: every job's
           batch size instead of its own (128, or 64 for small_relu).
  --channels-last: conv_autoencoder's model and images in channels-last memory format, as encore
           runs its convolutions (not the idiomatic script: the comparison beside it).
Prints one JSON line: {"case", "samples", "seconds", "samples_per_second"}.
"""
import argparse
import gzip
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DATA = "/usr/share/datasets/fashion-mnist"


DEVICE = torch.device("cpu")
BATCH_SIZE = None
CHANNELS_LAST = False


def load_images(samples):
    with gzip.open(f"{DATA}/train-images-idx3-ubyte.gz", "rb") as f:
        raw = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 784)
    return torch.from_numpy(raw[:samples].astype(np.float32) / 255.0).to(DEVICE)


def load_labels(samples):
    with gzip.open(f"{DATA}/train-labels-idx1-ubyte.gz", "rb") as f:
        raw = np.frombuffer(f.read(), dtype=np.uint8, offset=8)
    return torch.from_numpy(raw[:samples].astype(np.int64)).to(DEVICE)


def finished(start):
    """Seconds since start, once the device's queued work is done."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


class DenoisingLayer(nn.Module):
    def __init__(self, inputs, hidden, noise):
        super().__init__()
        self.encoder = nn.Linear(inputs, hidden)
        self.decoder = nn.Linear(hidden, inputs)
        self.noise = noise

    def encode(self, x):
        return torch.sigmoid(self.encoder(x))

    def loss(self, x):
        noisy = x * (torch.rand_like(x) >= self.noise)
        logits = self.decoder(self.encode(noisy))
        # Per-example BCE summed over features, averaged over the batch (as encore).
        return F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]


def train_epoch(loss_of, parameters, data, batch_size, targets=None):
    optimizer = torch.optim.Adam(parameters, lr=1e-3)
    batch_size = BATCH_SIZE or batch_size
    order = torch.randperm(data.shape[0], device=DEVICE)
    for start in range(0, data.shape[0], batch_size):
        rows = order[start:start + batch_size]
        batch = data[rows]
        loss = loss_of(batch) if targets is None else loss_of(batch, targets[rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def denoising_layer(samples):
    x = load_images(samples)
    layer = DenoisingLayer(784, 1000, 0.3).to(DEVICE)
    start = time.perf_counter()
    train_epoch(layer.loss, layer.parameters(), x, 128)
    return finished(start), samples


def greedy_stack(samples):
    x = load_images(samples)
    layers = [DenoisingLayer(784, 1000, 0.1).to(DEVICE), DenoisingLayer(1000, 1000, 0.2).to(DEVICE),
              DenoisingLayer(1000, 1000, 0.3).to(DEVICE)]
    start = time.perf_counter()
    codes = x
    for k, layer in enumerate(layers):
        if k > 0:
            with torch.no_grad():
                codes = torch.cat([layers[k - 1].encode(codes[i:i + 1024]) for i in range(0, codes.shape[0], 1024)])
        train_epoch(layer.loss, layer.parameters(), codes, 128)
    return finished(start), samples * len(layers)


def small_relu(samples):
    x = load_images(samples)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU(),
                          nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 784), nn.Sigmoid()).to(DEVICE)
    start = time.perf_counter()
    train_epoch(lambda batch: F.mse_loss(model(batch), batch), model.parameters(), x, 64)
    return finished(start), samples


def finetune(samples):
    x = load_images(samples)
    y = load_labels(samples)
    model = nn.Sequential(nn.Linear(784, 1000), nn.Sigmoid(), nn.Linear(1000, 1000), nn.Sigmoid(),
                          nn.Linear(1000, 1000), nn.Sigmoid(), nn.Linear(1000, 10)).to(DEVICE)
    eye = torch.eye(10, device=DEVICE)

    def loss(batch, labels):
        # One-versus-all: ten independent sigmoid units, BCE against one-hot targets.
        return F.binary_cross_entropy_with_logits(model(batch), eye[labels])

    start = time.perf_counter()
    train_epoch(loss, model.parameters(), x, 128, y)
    return finished(start), samples


def conv_autoencoder(samples):
    x = load_images(samples).reshape(-1, 1, 28, 28)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Upsample(scale_factor=2), nn.Conv2d(64, 32, 3, padding=1), nn.ReLU(),
        nn.Upsample(scale_factor=2), nn.Conv2d(32, 1, 3, padding=1), nn.Sigmoid()).to(DEVICE)
    if CHANNELS_LAST:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    start = time.perf_counter()
    train_epoch(lambda batch: F.mse_loss(model(batch), batch), model.parameters(), x, 128)
    return finished(start), samples


CASES = {"denoising_layer": denoising_layer, "greedy_stack": greedy_stack, "small_relu": small_relu, "finetune": finetune,
         "conv_autoencoder": conv_autoencoder}

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--samples", type=int, default=60000)
    parser.add_argument("--tuned", action="store_true")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args()
    DEVICE = torch.device(args.device)
    BATCH_SIZE = args.batch_size
    CHANNELS_LAST = args.channels_last
    torch.manual_seed(0)
    if args.tuned:
        torch.set_num_threads(len(os.sched_getaffinity(0)))
        torch.set_flush_denormal(True)
    seconds, trained = CASES[args.case](args.samples)
    print(json.dumps({"case": args.case, "samples": trained, "seconds": seconds, "samples_per_second": trained / seconds}))
