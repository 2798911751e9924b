"""Runs encore's training benchmarks and their PyTorch peers in one go and prints the table of
the README: samples/s of encore, of the peer script as installed and of the peer with every
setting tuned, their ratios, encore's share of the matrix-multiply limit, and peak memory of the
default experiment (README, "Measured against PyTorch"). Run through bench/run (which builds
first). The peers run with the Python that runs this script: /usr/bin/python3 (Debian's
python3-torch, LibTorch 1.13) beside build/, the project's .venv-torch (PyPI's torch 2.x) beside
build-torch/.

Usage: compare_training.py BUILD_DIR [--samples N] [--repeats R] [--memory-epochs E]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = sys.executable
CASES = [
    ("denoising_layer", "(a) denoising layer 784-1000-784, batch 128"),
    ("greedy_stack", "(b) greedy 784-1000-1000-1000, 1 epoch/layer"),
    ("small_relu", "(c) ReLU autoencoder 784-256-64, batch 64"),
    ("finetune", "(d) fine-tune 784-1000-1000-1000 + 10 one-vs-all"),
    ("conv_autoencoder", "(e) conv autoencoder 32-64 maps, pool 2, batch 128"),
]
GEMM_OF_CASE = {"denoising_layer": "gemm_denoising_layer", "finetune": "gemm_finetune"}


def run_json(command, env):
    """Runs a command that prints one JSON line last; returns (parsed line, peak resident MiB)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    out, err = process.stdout.read(), process.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(command)} failed:\n{err}")
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return (json.loads(lines[-1]) if lines else {}), usage.ru_maxrss / 1024


def environments(kernel):
    plain = {k: v for k, v in os.environ.items() if not k.startswith(("OPENBLAS_", "MALLOC_", "ENCORE_", "OMP_"))}
    tuned = dict(plain, OPENBLAS_CORETYPE=kernel, MALLOC_MMAP_THRESHOLD_=str(1 << 30), MALLOC_TRIM_THRESHOLD_=str(1 << 30))
    return plain, tuned


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build_dir")
    # A whole epoch of the training set, as the jobs are defined (one epoch per layer); fewer
    # samples weigh each run's start-up (thread pool, first-touch page faults) more heavily.
    parser.add_argument("--samples", type=int, default=60000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-epochs", type=int, default=1)
    # bench/run hands every option to both comparisons: each takes its own and leaves the others.
    args, _ = parser.parse_known_args()
    bench = os.path.join(args.build_dir, "bench", "training_bench")
    encore = os.path.join(args.build_dir, "apps", "encore")
    plain, _ = environments("")
    # encore runs as a user would start it: no OpenBLAS, allocator or thread variables set.
    gemm = {name: run_json([bench, name], plain)[0] for name in GEMM_OF_CASE.values()}
    kernel = gemm["gemm_denoising_layer"]["kernel"]
    plain, tuned = environments(kernel)
    print(f"machine: {os.cpu_count()} cores; encore BLAS: {gemm['gemm_denoising_layer']['blas']}; "
          f"{gemm['gemm_denoising_layer']['threads']} threads")
    peer_torch = subprocess.run([PYTHON, "-c", "import torch; print(torch.__version__)"], check=True, capture_output=True, text=True).stdout.strip()
    print(f"{args.samples} Fashion-MNIST training images per epoch; median of {args.repeats} runs each; "
          f"encore {gemm['gemm_denoising_layer']['libtorch']}; peers run with {PYTHON} (torch {peer_torch})\n")

    print("matrix-multiply limit (the products of one training step, timed alone, the faster of the BLAS's own threads")
    print("and one block of weight rows per thread as encore's linear() runs them; measured again beside each run):")
    for case, name in GEMM_OF_CASE.items():
        g = gemm[name]
        print(f"  {case:<16} {g['gemm_gflops']:7.1f} GFLOP/s = {g['samples_per_second']:9.0f} samples/s   "
              f"(BLAS threads {g['threaded_gemm_gflops']:.1f}, blocks per thread {g['owned_blocks_gemm_gflops']:.1f})")
    print()

    header = f"{'job':<50} {'encore':>9} {'PyTorch':>9} {'tuned':>9} {'/PyTorch':>9} {'/tuned':>7} {'GEMM share':>11}"
    print(header)
    print("-" * len(header))
    for case, label in CASES:
        runs = {"encore": [], "installed": [], "tuned": []}
        shares = []
        for _ in range(args.repeats):
            # The limit is measured next to each run: this machine's speed drifts between minutes.
            limit = run_json([bench, GEMM_OF_CASE[case]], plain)[0]["gemm_gflops"] if case in GEMM_OF_CASE else None
            result, _ = run_json([bench, case, "--samples", str(args.samples)], plain)
            runs["encore"].append(result["samples_per_second"])
            if limit:
                shares.append(result["gemm_gflops"] / limit)
            peer = [PYTHON, "bench/peer_training.py", case, "--samples", str(args.samples)]
            runs["installed"].append(run_json(peer, plain)[0]["samples_per_second"])
            runs["tuned"].append(run_json(peer + ["--tuned"], tuned)[0]["samples_per_second"])
        e, p, t = (statistics.median(runs[k]) for k in ("encore", "installed", "tuned"))
        share = f"{statistics.median(shares):.0%}" if shares else ""
        print(f"{label:<50} {e:9.0f} {p:9.0f} {t:9.0f} {e / p:8.2f}x {e / t:6.2f}x {share:>11}")
    print("(samples/s; 'tuned' = the peer with the BLAS kernel, all threads, glibc thresholds and denormal flushing set;")
    print(" GEMM share = encore's matrix-product FLOP/s over the limit measured just before it, median)\n")

    # The semi-supervised step against the supervised one, encore alone: the same network, each step
    # 32 labelled rows plus 128 unlabelled ones through every layer's denoising cost.
    steps = {case: statistics.median(run_json([bench, case, "--samples", str(args.samples)], plain)[0]["samples_per_second"]
                                     for _ in range(args.repeats))
             for case in ("finetune", "semi_supervised", "ladder_finetune", "ladder_semi_supervised")}
    print(f"semi-supervised fine-tuning step (784-1000-1000-1000, 32 labelled + 128 unlabelled rows, every layer's "
          f"denoising cost): {steps['semi_supervised']:.0f} rows/s = {steps['semi_supervised'] / steps['finetune']:.2f}x "
          f"the supervised step of (d) ({steps['finetune']:.0f} rows/s)")
    print(f"ladder network 784-1000-1000-1000, semi-supervised step (32 labelled + 128 unlabelled rows, clean and noisy paths "
          f"and the decoder): {steps['ladder_semi_supervised']:.0f} rows/s = "
          f"{steps['ladder_semi_supervised'] / steps['ladder_finetune']:.2f}x its supervised step "
          f"({steps['ladder_finetune']:.0f} rows/s)\n")

    stage_epochs = [f"/pretrain/greedy/epochs={args.memory_epochs}", f"/pretrain/end_to_end/epochs={args.memory_epochs}",
                    f"/finetune/phases/0/epochs={args.memory_epochs}", f"/finetune/phases/1/epochs={args.memory_epochs}"]
    run_dir = os.path.join(args.build_dir, "bench-memory-run")
    subprocess.run(["rm", "-rf", run_dir], check=True)
    command = [encore, "run", "configs/fashion_sda.json", "--output-dir", run_dir]
    for override in stage_epochs:
        command += ["--set", override]
    _, encore_mib = run_json(command, plain)
    _, peer_mib = run_json([PYTHON, "bench/peer_experiment.py", "--epochs", str(args.memory_epochs)], tuned)
    print(f"peak resident memory, default experiment (configs/fashion_sda.json, {args.memory_epochs} epoch per stage):")
    print(f"  encore run {encore_mib:7.0f} MiB   PyTorch script {peer_mib:7.0f} MiB   ratio {encore_mib / peer_mib:.2f}")


if __name__ == "__main__":
    main()
