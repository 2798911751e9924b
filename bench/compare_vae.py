"""The test ELBO of encore's dense variational autoencoder against the same model trained by a
PyTorch script with the same settings, both on Fashion-MNIST, in one go.

The script reads the encore config (a `variational_autoencoder` model, `pretrain.mode`
`end_to_end`), runs `encore pretrain CONFIG` for encore's figure (summary.json's
pretrain.test.variational_bound), then trains the same network in PyTorch the way a PyTorch user
writes a VAE (nn.Linear layers, torch.optim.Adam, the config's cosine schedule and KL warm-up,
batches cut from a shuffled index of the training images less a held-out tenth) and evaluates its
test ELBO the same way: one latent sample per test image, Bernoulli likelihood summed over pixels,
KL to the standard normal prior, averaged over the 10,000 test images.

Usage: /usr/bin/python3 bench/compare_vae.py [CONFIG] [--build BUILD_DIR] [--epochs E]
  CONFIG: default configs/fashion_vae.json; --epochs: both trainings' epochs instead of the config's.
Prints both bounds per test image and their relative difference.
"""
import argparse
import gzip
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_images(path):
    with gzip.open(path, "rb") as f:
        raw = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 784)
    return torch.from_numpy(raw.astype(np.float32) / 255.0)


class Vae(nn.Module):
    def __init__(self, hidden, latent):
        super().__init__()
        widths = [784] + hidden
        self.encoder = nn.Sequential(*[m for a, b in zip(widths, widths[1:]) for m in (nn.Linear(a, b), nn.ReLU())])
        self.mean = nn.Linear(widths[-1], latent)
        self.log_variance = nn.Linear(widths[-1], latent)
        back = [latent] + hidden[::-1]
        self.decoder = nn.Sequential(*[m for a, b in zip(back, back[1:]) for m in (nn.Linear(a, b), nn.ReLU())],
                                     nn.Linear(back[-1], 784))

    def terms(self, x):
        """Reconstruction (-log p(x|z), one sample) and KL per image, averaged over the batch."""
        h = self.encoder(x)
        mean, log_variance = self.mean(h), self.log_variance(h)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * log_variance)
        reconstruction = F.binary_cross_entropy_with_logits(self.decoder(z), x, reduction="sum") / x.shape[0]
        kl = 0.5 * (mean.pow(2) + log_variance.exp() - log_variance - 1).sum() / x.shape[0]
        return reconstruction, kl


def peer_bound(config, epochs):
    data = config["data"]
    model_config, train = config["model"], config["pretrain"]["end_to_end"]
    torch.manual_seed(config.get("seed", 1))
    images = load_images(data["train_images"])
    order = torch.randperm(images.shape[0])
    held_out = int(round(images.shape[0] * data.get("validation_fraction", 0.1)))
    x = images[order[held_out:]]
    model = Vae(model_config["hidden_dims"], model_config["latent_dim"])
    lr, min_lr = train["optimizer"]["lr"], train.get("schedule", {}).get("min_lr", 0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    weight, warmup = model_config.get("kl_weight", 1.0), model_config.get("kl_warmup_steps", 0)
    step = 0
    for epoch in range(epochs):
        for group in optimizer.param_groups:
            group["lr"] = min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
        shuffled = torch.randperm(x.shape[0])
        for start in range(0, x.shape[0], train["batch_size"]):
            batch = x[shuffled[start:start + train["batch_size"]]]
            reconstruction, kl = model.terms(batch)
            beta = weight * min(1.0, step / warmup) if warmup > 0 else weight
            optimizer.zero_grad(set_to_none=True)
            (reconstruction + beta * kl).backward()
            optimizer.step()
            step += 1
    test = load_images(data["test_images"])
    with torch.no_grad():
        sums = [0.0, 0.0]
        for start in range(0, test.shape[0], 1000):
            batch = test[start:start + 1000]
            for k, term in enumerate(model.terms(batch)):
                sums[k] += term.item() * batch.shape[0]
    reconstruction, kl = sums[0] / test.shape[0], sums[1] / test.shape[0]
    return {"reconstruction": reconstruction, "kl": kl, "elbo": -(reconstruction + kl)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("config", nargs="?", default=os.path.join(ROOT, "configs", "fashion_vae.json"))
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--epochs", type=int)
    args = parser.parse_args()
    with open(args.config) as f:
        config = json.load(f)
    if config["model"].get("type") != "variational_autoencoder" or config["pretrain"].get("mode") != "end_to_end":
        sys.exit(f"{args.config}: needs a variational_autoencoder model pretrained end_to_end")
    epochs = args.epochs or config["pretrain"]["end_to_end"]["epochs"]
    with tempfile.TemporaryDirectory() as run:
        command = [os.path.join(args.build, "apps", "encore"), "pretrain", args.config, "--output-dir", run,
                   "--set", f"/pretrain/end_to_end/epochs={epochs}"]
        subprocess.run(command, check=True, cwd=ROOT)
        with open(os.path.join(run, "summary.json")) as f:
            encore_bound = json.load(f)["pretrain"]["test"]["variational_bound"]
    peer = peer_bound(config, epochs)
    print(f"{args.config}, {epochs} epochs; test ELBO per image (reconstruction + KL, nats):")
    for name, bound in (("encore", encore_bound), ("PyTorch", peer)):
        print(f"  {name:<8} ELBO {bound['elbo']:9.3f}   reconstruction {bound['reconstruction']:9.3f}   KL {bound['kl']:7.3f}")
    print(f"  relative difference {abs(encore_bound['elbo'] - peer['elbo']) / abs(peer['elbo']):.2%}")


if __name__ == "__main__":
    main()
