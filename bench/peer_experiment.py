"""The PyTorch peer of `encore run configs/fashion_sda.json`, for the peak-memory comparison in
bench/compare_training.py: the same job written as a competent PyTorch script. Fashion-MNIST loaded as
float tensors, a 10% validation split, greedy denoising pretraining of 784-1000-500-250 (masking noise
0.1/0.2/0.3, BCE), end-to-end fine-tuning of the stack, then a one-versus-all head trained alone and
with the encoder, and the test accuracy.

Usage: peer_experiment.py [--epochs N]   (every stage runs N epochs; the default config's counts
otherwise: 10 per greedy layer, 10 end to end, 3 head only, 20 all)
"""
import argparse
import copy
import gzip
import json

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DATA = "/usr/share/datasets/fashion-mnist"


def idx(name, offset):
    with gzip.open(f"{DATA}/{name}", "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def images(name):
    return torch.from_numpy(idx(name, 16).reshape(-1, 784).astype(np.float32) / 255.0)


def labels(name):
    return torch.from_numpy(idx(name, 8).astype(np.int64))


def batches(count, batch_size, shuffle=True):
    order = torch.randperm(count) if shuffle else torch.arange(count)
    return [order[i:i + batch_size] for i in range(0, count, batch_size)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int)
    args = parser.parse_args()
    epochs = lambda default: args.epochs or default
    torch.manual_seed(1)

    x, y = images("train-images-idx3-ubyte.gz"), labels("train-labels-idx1-ubyte.gz")
    x_test, y_test = images("t10k-images-idx3-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz")
    order = torch.randperm(x.shape[0])
    validation, train = order[:6000], order[6000:]
    x_val, y_val, x_train, y_train = x[validation], y[validation], x[train], y[train]

    widths, noise = [784, 1000, 500, 250], [0.1, 0.2, 0.3]
    encoders = nn.ModuleList(nn.Linear(widths[k], widths[k + 1]) for k in range(3))
    decoders = nn.ModuleList(nn.Linear(widths[k + 1], widths[k]) for k in range(3))

    def encode(h, depth):
        for k in range(depth):
            h = torch.sigmoid(encoders[k](h))
        return h

    def reconstruction_loss(logits, target, first_layer):
        if first_layer:
            return F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / target.shape[0]
        return F.binary_cross_entropy(torch.sigmoid(logits), target, reduction="sum") / target.shape[0]

    for k in range(3):
        with torch.no_grad():
            codes = encode(x_train, k)
        optimizer = torch.optim.Adam([*encoders[k].parameters(), *decoders[k].parameters()], lr=1e-3)
        for _ in range(epochs(10)):
            for rows in batches(codes.shape[0], 128):
                clean = codes[rows]
                noisy = clean * (torch.rand_like(clean) >= noise[k])
                logits = decoders[k](torch.sigmoid(encoders[k](noisy)))
                loss = reconstruction_loss(logits, clean, k == 0)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

    optimizer = torch.optim.Adam([*encoders.parameters(), *decoders.parameters()], lr=3e-4)
    for _ in range(epochs(10)):
        for rows in batches(x_train.shape[0], 128):
            clean = x_train[rows]
            h = encode(clean * (torch.rand_like(clean) >= noise[0]), 3)
            for k in reversed(range(1, 3)):
                h = torch.sigmoid(decoders[k](h))
            loss = reconstruction_loss(decoders[0](h), clean, True)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    head = nn.Linear(250, 10)
    eye = torch.eye(10)
    best_state, best_accuracy = None, -1.0

    def accuracy(xs, ys):
        with torch.no_grad():
            return (head(encode(xs, 3)).argmax(1) == ys).float().mean().item()

    for name, parameters, lr, count in [("head_only", head.parameters(), 1e-3, epochs(3)),
                                        ("all", [*encoders.parameters(), *head.parameters()], 5e-4, epochs(20))]:
        optimizer = torch.optim.Adam(parameters, lr=lr)
        for _ in range(count):
            for rows in batches(x_train.shape[0], 128):
                scores = head(encode(x_train[rows], 3))
                loss = F.binary_cross_entropy_with_logits(scores, eye[y_train[rows]], reduction="sum") / rows.shape[0]
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            if name == "all":
                current = accuracy(x_val, y_val)
                if current > best_accuracy:
                    best_accuracy = current
                    best_state = copy.deepcopy((encoders.state_dict(), head.state_dict()))
    print(json.dumps({"test_accuracy": accuracy(x_test, y_test), "kept_best": best_state is not None}))


if __name__ == "__main__":
    main()
