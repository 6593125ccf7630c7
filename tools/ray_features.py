"""Embeds many images with `zoo features` fanned out as Ray tasks, then merges the shards.

Each task runs one `zoo features MODEL INPUT... -o SHARDS --shard-size N --shard-index I --shard-count T
--resume` over a folder every node sees (a shared file system); the zoo splits the sorted inputs itself, so the
tasks write disjoint shards, and `zoo merge-features SHARDS -o OUT` joins them into the single-process file,
byte for byte. A task that dies (a lost node, a kill) is retried by Ray (`--retries`); with `--resume` the retry
keeps the shards already written. Nothing is scheduled here: Ray places the tasks (docs/scale.md).

    python tools/ray_features.py --address auto --zoo /opt/zoo/bin/zoo --model /shared/resnet50.safetensors \\
        --shards /shared/emb --output /shared/emb.safetensors --tasks 64 --shard-size 1000 -- /shared/photos

`--local N` starts a private Ray cluster on the loopback address with N CPUs instead (tests, one machine) and
stops it at the end. Exit status: 0 all done; 4 done with images skipped (`--skip-bad`); 1 a task or the merge
failed (its stderr is printed).
"""
import argparse
import shutil
import subprocess
import sys
import tempfile
import time

import ray


@ray.remote(num_cpus=1)
def embed_part(zoo, model, inputs, shards, shard_size, index, count, threads, skip_bad):
    """One process's part: `zoo features ... --shard-index index --shard-count count --resume`."""
    command = [zoo, "features", model, *inputs, "-o", shards, "--shard-size", str(shard_size), "--shard-index", str(index),
               "--shard-count", str(count), "--threads", str(threads), "--resume", "-q"]
    if skip_bad:
        command.append("--skip-bad")
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode not in (0, 4):
        # Raised, so Ray retries the task (max_retries with retry_exceptions).
        raise RuntimeError(f"part {index} of {count}: exit {done.returncode}: {done.stderr.strip()}")
    return index, done.returncode


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zoo", required=True, help="the zoo executable (the same path on every node)")
    parser.add_argument("--model", required=True, help="a native checkpoint every node can read")
    parser.add_argument("--shards", required=True, help="the shard directory (shared)")
    parser.add_argument("--output", required=True, help="the merged embeddings file")
    parser.add_argument("--tasks", type=int, default=2, help="Ray tasks (processes), each writing every tasks-th shard")
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1, help="zoo compute threads per task (match the task's CPUs)")
    parser.add_argument("--skip-bad", action="store_true", help="skip unreadable images (exit 4 when any were)")
    parser.add_argument("--retries", type=int, default=3, help="Ray retries of a failed task")
    parser.add_argument("--timeout", type=float, default=None, help="seconds to wait for all tasks before giving up")
    cluster = parser.add_mutually_exclusive_group()
    cluster.add_argument("--address", help="an existing Ray cluster (`auto`, or HOST:PORT)")
    cluster.add_argument("--local", type=int, metavar="CPUS", help="start a private cluster on 127.0.0.1 with CPUS CPUs")
    parser.add_argument("inputs", nargs="+", help="files, directories or patterns, as `zoo features` takes them (after --)")
    args = parser.parse_args()

    session = None
    if args.local:
        # The private cluster's sockets and logs go to a folder of its own, removed with it.
        session = tempfile.mkdtemp(prefix="zoo-ray-")
        ray.init(num_cpus=args.local, _node_ip_address="127.0.0.1", include_dashboard=False,
                 object_store_memory=80 * 1024 * 1024, log_to_driver=False, _temp_dir=session)
    else:
        ray.init(address=args.address or "auto", log_to_driver=False)
    try:
        started = time.monotonic()
        futures = [embed_part.options(max_retries=args.retries, retry_exceptions=True).remote(
            args.zoo, args.model, args.inputs, args.shards, args.shard_size, i, args.tasks, args.threads, args.skip_bad)
            for i in range(args.tasks)]
        try:
            results = ray.get(futures, timeout=args.timeout)
        except (ray.exceptions.RayError, RuntimeError) as error:
            print(f"ray_features: {error}", file=sys.stderr)
            return 1
        skipped = any(code == 4 for _, code in results)
        merged = subprocess.run([args.zoo, "merge-features", args.shards, "-o", args.output, "--force", "-q"],
                                capture_output=True, text=True)
        if merged.returncode != 0:
            print(merged.stderr.strip(), file=sys.stderr)
            return 1
        print(f"{args.output}: {args.tasks} Ray tasks in {time.monotonic() - started:.1f} s"
              + (" (images skipped)" if skipped else ""))
        return 4 if skipped else 0
    finally:
        ray.shutdown()
        if session:
            shutil.rmtree(session, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
