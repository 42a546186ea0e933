"""Scale-out on this machine: a generation phase on 1 process vs 2 Ray workers, Ray's start-up cost, and a
training phase on 1 vs 2 processes (accelerate launch, DDP over gloo).

Generation: GSM8K-shaped few-shot prompts (the STaR prompt from ../shared when present) on a random-weight
Llama with a BPE tokenizer (as benchmarks/speed.py), backend ``hf``, sampled (``num_samples``, temperature
1), cut into chunks of ``--chunk-size`` questions. One process uses both cores; each Ray worker has one
(Ray gives an actor ``num_cpus=1`` threads), so on 2 cores the comparison is one 2-thread replica against
two 1-thread replicas, and the outputs must be identical. Ray's overhead is measured apart: ``ray.init``
(a local cluster) and starting the actors with their model loaded, against loading the model here.

Training: one `TrainJob` on the tiny llama's own generations, 1 process in this process vs 2 processes
launched as the loop launches them (`training.launch`), same global batch; seconds per step, launch
overhead, and the largest loss difference.

Run:  .venv/bin/python benchmarks/scale_out.py [--questions 64] [--chunk-size 8] [--steps 30]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def config_for(model: Path, workers: int, batch_size: int, chunk_size: int):
    from selftaught.config import config_from_dict

    return config_from_dict(
        {
            "model": {"name_or_path": str(model), "chat_template": "off"},
            "generation": {"backend": "hf", "batch_size": batch_size, "chunk_size": chunk_size},
            "distributed": {"generation_workers": workers},
            "train": {"batch_size": 16, "learning_rate": 1e-3, "save_every_steps": 0, "max_length": 4096},
        }
    )


def chunk_jobs(prompts: list[str], chunk_size: int, budget: int, num_samples: int):
    from selftaught.generation.sampling import Sampling
    from selftaught.generation.workers import ChunkJob

    return [
        ChunkJob(
            k,
            prompts[s : s + chunk_size],
            [budget] * len(prompts[s : s + chunk_size]),
            Sampling(num_samples=num_samples, temperature=1.0, top_p=1.0, seed=k),
        )
        for k, s in enumerate(range(0, len(prompts), chunk_size))
    ]


def generation(folder: Path, args) -> dict:
    import ray
    import torch

    from selftaught.generation.workers import LocalWorkers, RayWorkers, start_ray

    torch.set_num_threads(2)
    prompts = json.loads((folder / "prompts.json").read_text())
    jobs = chunk_jobs(prompts, args.chunk_size, args.budget, args.num_samples)
    model = folder / "model"
    local = LocalWorkers(config_for(model, 1, args.batch_size, args.chunk_size))
    start = time.perf_counter()
    local.load(model)
    load_local = time.perf_counter() - start
    start = time.perf_counter()
    one = {r.index: r.completions for r in local.map(model, jobs)}
    seconds_one = time.perf_counter() - start
    local.release()

    start = time.perf_counter()
    start_ray()
    ray_init = time.perf_counter() - start
    pool = RayWorkers(config_for(model, 2, args.batch_size, args.chunk_size))
    start = time.perf_counter()
    pool.load(model)
    actors_loaded = time.perf_counter() - start
    start = time.perf_counter()
    two = {r.index: r.completions for r in pool.map(model, jobs)}
    seconds_two = time.perf_counter() - start
    pool.release()
    ray.shutdown()
    return {
        "chunks": len(jobs),
        "completions": len(prompts) * args.num_samples,
        "seconds_1_process": round(seconds_one, 2),
        "seconds_2_workers": round(seconds_two, 2),
        "speedup": round(seconds_one / seconds_two, 2),
        "identical_chunks": sum(one[k] == two[k] for k in one),
        "model_load_here_s": round(load_local, 2),
        "ray_init_s": round(ray_init, 2),
        "actors_started_and_loaded_s": round(actors_loaded, 2),
        "phase_1_process_s": round(load_local + seconds_one, 2),
        "phase_2_workers_cold_s": round(ray_init + actors_loaded + seconds_two, 2),
    }


def training(folder: Path, args) -> dict:
    from selftaught.common import atomic
    from selftaught.training.launch import train_in_processes
    from selftaught.training.phase import TrainJob, run_job

    prompts = json.loads((folder / "prompts.json").read_text())
    records = [
        {"id": str(k), "prompt": p, "completion": f" The answer is {k % 97}.", "source": "generated"}
        for k, p in enumerate(prompts[:32])
    ]  # 32 = 2 global batches of 16: both layouts see the same batches
    atomic.atomic_write_jsonl(folder / "train.jsonl", records)
    config = config_for(folder / "model", 1, args.batch_size, args.chunk_size).to_dict()

    def job(name: str) -> TrainJob:
        return TrainJob(str(folder / "model"), str(folder / "train.jsonl"), args.steps, str(folder / name),
                        str(folder / f"{name}-logs"), name, config)  # fmt: skip

    start = time.perf_counter()
    log_one = run_job(job("one"), folder / "out-one")
    seconds_one = time.perf_counter() - start
    steps_two: list[float] = []
    start = time.perf_counter()
    log_two, processes = train_in_processes(
        job("two"),
        folder / "out-two",
        2,
        "",
        folder / "two.log",
        lambda step, loss: steps_two.append(time.perf_counter()),
    )
    seconds_two = time.perf_counter() - start
    step_s_two = (steps_two[-1] - steps_two[0]) / max(1, len(steps_two) - 1)
    return {
        "steps": args.steps,
        "global_batch": 16,
        "processes": processes,
        "seconds_1_process": round(seconds_one, 2),
        "seconds_2_processes": round(seconds_two, 2),
        "step_s_2_processes": round(step_s_two, 3),
        "launch_overhead_s": round(seconds_two - step_s_two * args.steps, 1),
        "max_loss_difference": max(abs(a["loss"] - b["loss"]) for a, b in zip(log_one, log_two)),
    }


def main() -> None:
    from speed import build

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=64)
    parser.add_argument("--chunk-size", type=int, default=8)
    parser.add_argument("--num-samples", type=int, default=2)
    parser.add_argument("--budget", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "scale_out.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        info = build(Path(tmp), args.questions, args.hidden, args.layers)
        gen = generation(Path(tmp), args)
        train = training(Path(tmp), args)
    print(f"{info['source']}: {args.questions} questions x {args.num_samples} samples, prompts of "
          f"{info['prompt_tokens_mean']:.0f} tokens, budget {args.budget}, random Llama "
          f"{info['parameters'] / 1e6:.1f}M params, chunks of {args.chunk_size}")  # fmt: skip
    print("generation phase            1 process    2 Ray workers")
    print(f"  generate (model loaded)   {gen['seconds_1_process']:>8} s  {gen['seconds_2_workers']:>8} s"
          f"   x{gen['speedup']}  identical chunks {gen['identical_chunks']}/{gen['chunks']}")  # fmt: skip
    print(f"  start-up                  {gen['model_load_here_s']:>8} s  {gen['ray_init_s']:>8} s ray.init + "
          f"{gen['actors_started_and_loaded_s']} s actors with models")  # fmt: skip
    print(f"  phase, cold               {gen['phase_1_process_s']:>8} s  {gen['phase_2_workers_cold_s']:>8} s")
    print(f"training, {train['steps']} steps of 16    1 process    2 processes (accelerate launch, gloo)")
    print(f"  total                     {train['seconds_1_process']:>8} s  {train['seconds_2_processes']:>8} s"
          f"   launch overhead ~{train['launch_overhead_s']} s, {train['step_s_2_processes']} s/step; "
          f"max loss difference {train['max_loss_difference']:.1e}")  # fmt: skip
    payload = {**info, **vars(args), "generation": gen, "training": train}
    Path(args.out).write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
