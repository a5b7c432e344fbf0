"""A collective's bandwidth through torch.distributed, size by size, as nccl-tests prints it.

Started by torchrun, one process a GPU: `python -m torch.distributed.run --standalone
--nproc_per_node N torch_sweep.py --op all_reduce -b 128K -e 4G -f 2`. Rank 0 prints one
line a size in nccl-tests' out-of-place columns (size, count, type, redop, root, time in us,
algbw and busbw in GB/s, #wrong), so the same parser reads both. busbw is nccl-tests' bus
bandwidth: algbw x 2(n-1)/n for all_reduce, x (n-1)/n for all_gather and reduce_scatter.
Each size is checked for the right answer once before it is timed.

With one rank an in-place all_reduce does no work at all (it once "measured" 160,750 GB/s at
4G on an H100), so there it is timed out of place, as nccl-tests' figures are: the input is
copied to the output, which is then reduced.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.distributed as dist

UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def size(text: str) -> int:
    return int(text[:-1]) * UNITS[text[-1].upper()] if text[-1].upper() in UNITS else int(text)


def busbw_factor(op: str, ranks: int) -> float:
    return 2 * (ranks - 1) / ranks if op == "all_reduce" else (ranks - 1) / ranks


def run_once(op: str, data: torch.Tensor, out: torch.Tensor) -> None:
    if op == "all_reduce":
        if out is not data:  # out of place (one rank): what NCCL does for nccl-tests
            out.copy_(data)
        dist.all_reduce(out)
    elif op == "all_gather":
        dist.all_gather_into_tensor(out, data)
    else:
        dist.reduce_scatter_tensor(out, data)


def buffers(op: str, total: int, ranks: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """(input, output) for a message of `total` bytes, counted as nccl-tests counts it; one
    buffer for an all_reduce over 2+ ranks (in place), two for one rank."""
    count = total // 4
    if op == "all_reduce":
        data = torch.ones(count, device=device)
        return data, (data if ranks > 1 else torch.empty(count, device=device))
    if op == "all_gather":
        return torch.ones(count // ranks, device=device), torch.empty(count, device=device)
    return torch.ones(count, device=device), torch.empty(count // ranks, device=device)


def wrong(op: str, out: torch.Tensor, ranks: int) -> int:
    """Elements that differ from the answer after one run on buffers of ones."""
    expected = 1.0 if op == "all_gather" else float(ranks)
    return int((out != expected).sum().item())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--op", choices=["all_reduce", "all_gather", "reduce_scatter"])
    parser.add_argument("-b", "--minbytes", type=size, default=size("128K"))
    parser.add_argument("-e", "--maxbytes", type=size, default=size("4G"))
    parser.add_argument("-f", "--stepfactor", type=int, default=2)
    parser.add_argument("-w", "--warmup", type=int, default=5)
    parser.add_argument("-n", "--iters", type=int, default=20)
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if cuda else "gloo")
    ranks, rank = dist.get_world_size(), dist.get_rank()
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if rank == 0:
        backend = f"NCCL {'.'.join(map(str, torch.cuda.nccl.version()))}" if cuda else "gloo"
        print(f"# torch {torch.__version__}, {backend}, {ranks} ranks, {args.op}", flush=True)
        print(
            "#       size         count      type   redop    root     time   algbw   busbw  #wrong"
        )
    total = args.minbytes
    while total <= args.maxbytes:
        data, out = buffers(args.op, total, ranks, device)
        run_once(args.op, data, out)
        errors = wrong(args.op, out, ranks)
        for _ in range(args.warmup):
            run_once(args.op, data, out)
        if cuda:
            torch.cuda.synchronize()
        dist.barrier()
        started = time.perf_counter()
        for _ in range(args.iters):
            run_once(args.op, data, out)
        if cuda:
            torch.cuda.synchronize()
        seconds = torch.tensor([(time.perf_counter() - started) / args.iters], device=device)
        dist.all_reduce(seconds, op=dist.ReduceOp.MAX)  # the slowest rank, as nccl-tests
        counts = torch.tensor([errors], device=device)
        dist.all_reduce(counts)
        if rank == 0:
            algbw = total / seconds.item() / 1e9
            busbw = algbw * busbw_factor(args.op, ranks)
            redop = "none" if args.op == "all_gather" else "sum"
            print(
                f"{total:>12} {total // 4:>13} {'float':>9} {redop:>7} {-1:>7} "
                f"{seconds.item() * 1e6:>8.2f} {algbw:>7.2f} {busbw:>7.2f} {int(counts.item()):>7}",
                flush=True,
            )
        del data, out
        total *= args.stepfactor
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
