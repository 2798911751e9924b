"""Data parallel on this machine: the default experiment's network (configs/fashion_sda.json, one
epoch per stage) trained by one process with all threads against `--nproc N` processes of one
thread each, and the share of the data-parallel step time spent communicating (README, "Several
processes and machines").

The communication share is measured from the outside, without touching the program: N independent
single-thread runs, started together, each train with the per-rank batch (batch_size / N). They do
the data-parallel run's computation on the same cores without any all-reduce; the data-parallel run's
throughput over theirs is the share of step time that is computation, and the rest is
communication (the part of the all-reduces backward does not hide, plus the waiting for the slower
rank).

For scale, PyTorch's own Gloo all-reduce (torch.distributed, of the Python that runs this script) of the largest
stage's gradients (pretrain/layer0: 784x1000 weights each way and biases) is timed alone on the same
processes and cores.

Usage: data_parallel.py BUILD_DIR [--nproc N] [--repeats R]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "fashion_sda.json")
PYTHON = sys.executable
STAGES = ["pretrain/layer0", "pretrain/layer1", "pretrain/layer2", "pretrain/end_to_end", "finetune/head_only", "finetune/all"]
ONE_EPOCH = ["/pretrain/greedy/epochs=1", "/pretrain/end_to_end/epochs=1", "/finetune/phases/0/epochs=1", "/finetune/phases/1/epochs=1"]


def overrides(values):
    out = []
    for value in ONE_EPOCH + values:
        out += ["--set", value]
    return out


def stage_rates(run_dir):
    """samples/s of each stage's epoch, from metrics.jsonl."""
    rates = {}
    with open(os.path.join(run_dir, "metrics.jsonl")) as lines:
        for line in lines:
            record = json.loads(line)
            rates[record["stage"]] = record["train/samples_per_second"]
    return rates


def start(encore, run_dir, extra):
    command = [encore, "run", CONFIG, "--output-dir", run_dir] + extra
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def finish(process):
    _, err = process.communicate()
    if process.returncode != 0:
        sys.exit(f"{' '.join(process.args)} failed:\n{err}")


def batch_settings(value):
    """Every stage's batch_size set to `value`."""
    return [f"/pretrain/greedy/batch_size={value}", f"/pretrain/end_to_end/batch_size={value}",
            f"/finetune/phases/0/batch_size={value}", f"/finetune/phases/1/batch_size={value}"]


def measure(encore, scratch, nproc, repeat):
    cores = os.cpu_count()
    base = f"{scratch}/r{repeat}"
    # One process, all threads.
    process = start(encore, f"{base}-single", overrides([f"/threads={cores}"]))
    finish(process)
    single = stage_rates(f"{base}-single")
    # N processes of one thread: data parallel.
    process = start(encore, f"{base}-parallel", overrides([f"/threads={max(1, cores // nproc)}"]) + ["--nproc", str(nproc)])
    finish(process)
    parallel = stage_rates(f"{base}-parallel")
    # N independent processes doing each rank's computation, without communication.
    config = json.load(open(CONFIG))
    batch = config["pretrain"]["greedy"]["batch_size"] // nproc
    processes = [start(encore, f"{base}-alone{r}", overrides([f"/threads={max(1, cores // nproc)}"] + batch_settings(batch)))
                 for r in range(nproc)]
    for process in processes:
        finish(process)
    alone = [stage_rates(f"{base}-alone{r}") for r in range(nproc)]
    compute_only = {stage: sum(rates[stage] for rates in alone) for stage in STAGES}
    return single, parallel, compute_only


LAYER0_GRADIENT_FLOATS = 784 * 1000 * 2 + 1000 + 784


def peer_allreduce_worker(rank, world_size, store_file):
    """One rank of the PyTorch all-reduce timing; rank 0 prints milliseconds per all-reduce."""
    import torch
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store_file}", rank=rank, world_size=world_size)
    gradients = torch.zeros(LAYER0_GRADIENT_FLOATS)
    for _ in range(5):
        dist.all_reduce(gradients)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(20):
            dist.all_reduce(gradients)
        times.append((time.perf_counter() - start) / 20)
    if rank == 0:
        print(statistics.median(times) * 1000)
    # torch 2.x aborts at exit (std::terminate) when the group is left to the interpreter's end.
    dist.destroy_process_group()


def peer_allreduce_ms(nproc, scratch):
    store = os.path.join(scratch, "peer-store")
    workers = [subprocess.Popen([PYTHON, os.path.abspath(__file__), "--peer-allreduce-rank", str(r), "--nproc", str(nproc), store],
                                stdout=subprocess.PIPE, text=True) for r in range(nproc)]
    outputs = [w.communicate()[0] for w in workers]
    if any(w.returncode != 0 for w in workers):
        sys.exit("the PyTorch all-reduce timing failed")
    return float(outputs[0].strip())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build_dir")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peer-allreduce-rank", type=int, help=argparse.SUPPRESS)
    # bench/run hands every option to both comparisons: each takes its own and leaves the others.
    args, _ = parser.parse_known_args()
    if args.peer_allreduce_rank is not None:
        peer_allreduce_worker(args.peer_allreduce_rank, args.nproc, args.build_dir)
        return
    encore = os.path.join(os.path.abspath(args.build_dir), "apps", "encore")
    config = json.load(open(CONFIG))
    with tempfile.TemporaryDirectory(prefix="encore-dp-bench-") as scratch:
        runs = [measure(encore, scratch, args.nproc, r) for r in range(args.repeats)]
        allreduce_ms = peer_allreduce_ms(args.nproc, scratch)

    cores = os.cpu_count()
    print(f"machine: {cores} cores; network {config['model']['hidden_dims']} on {CONFIG} (Fashion-MNIST, 1 epoch per stage), "
          f"global batch {config['pretrain']['greedy']['batch_size']}; median of {args.repeats} runs")
    print(f"{'stage':22}{'1 proc x ' + str(cores) + ' thr':>16}{str(args.nproc) + ' proc x ' + str(max(1, cores // args.nproc)) + ' thr':>16}"
          f"{'ratio':>8}{'compute only':>14}{'communication':>15}")
    print("-" * 91)
    totals = [0.0, 0.0, 0.0]
    for stage in STAGES:
        single = statistics.median(run[0][stage] for run in runs)
        parallel = statistics.median(run[1][stage] for run in runs)
        compute_only = statistics.median(run[2][stage] for run in runs)
        communication = 1 - parallel / compute_only
        print(f"{stage:22}{single:16.0f}{parallel:16.0f}{parallel / single:7.2f}x{compute_only:14.0f}{communication:14.0%}")
        for i, value in enumerate((single, parallel, compute_only)):
            totals[i] += 1 / value  # seconds per sample, summed over the stages
    single, parallel, compute_only = (len(STAGES) / t for t in totals)
    print(f"{'all stages':22}{single:16.0f}{parallel:16.0f}{parallel / single:7.2f}x{compute_only:14.0f}{1 - parallel / compute_only:14.0%}")
    print("(samples/s of each stage's training epoch; 'compute only' = the per-rank computation run by independent processes "
          "with no all-reduce;\n communication = 1 - data parallel / compute only: the share of the data-parallel step spent "
          "communicating or waiting)")
    layer0_step_ms = 1000 * config["pretrain"]["greedy"]["batch_size"] / statistics.median(run[1]["pretrain/layer0"] for run in runs)
    print(f"PyTorch's Gloo all-reduce of pretrain/layer0's gradients ({LAYER0_GRADIENT_FLOATS * 4 / 2**20:.1f} MiB) alone, "
          f"{args.nproc} processes: {allreduce_ms:.1f} ms; encore's data-parallel step there: {layer0_step_ms:.1f} ms")


if __name__ == "__main__":
    main()
