"""encore's dense training jobs on a CUDA GPU against the same jobs as PyTorch scripts on that GPU
(scripts/device-check): samples/s of each, median of --repeats runs, and their ratio. The peers run
with the Python that runs this script (the torch encore was built against).

Usage: compare_gpu.py BUILD_DIR [--batch-size B] [--samples N] [--repeats R]
"""
import argparse
import os
import statistics
import sys

from compare_training import CASES, run_json


def samples_per_second(command):
    return run_json(command, dict(os.environ))[0]["samples_per_second"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build_dir")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--samples", type=int, default=60000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch

    bench = os.path.join(args.build_dir, "bench", "training_bench")
    common = ["--samples", str(args.samples), "--device", "cuda", "--batch-size", str(args.batch_size)]
    print(f"{torch.cuda.get_device_name(0)}; torch {torch.__version__} ({sys.executable}); batch {args.batch_size}; "
          f"{args.samples} Fashion-MNIST images per epoch; median of {args.repeats} runs\n")
    header = f"{'job':<18} {'encore':>10} {'PyTorch':>10} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for case, _ in CASES:
        encore = statistics.median(samples_per_second([bench, case] + common) for _ in range(args.repeats))
        peer = statistics.median(samples_per_second([sys.executable, "bench/peer_training.py", case] + common)
                                 for _ in range(args.repeats))
        print(f"{case:<18} {encore:10.0f} {peer:10.0f} {encore / peer:6.2f}x")
    print("(samples/s on the GPU; ratio = encore / PyTorch)")


if __name__ == "__main__":
    main()
