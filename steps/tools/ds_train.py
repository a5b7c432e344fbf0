"""A small real DeepSpeed training run: a few hundred steps of a small transformer on
generated data with ZeRO stage 2, bf16 where the GPUs support it, on every GPU.

Started by DeepSpeed's launcher, one process a GPU:
`python -m deepspeed.launcher.runner --num_gpus N ds_train.py --steps 300`, or by srun
itself (DeepSpeed's `--launcher slurm`, its rank from Slurm's variables). The data is
random tokens whose targets are a fixed function of them, so the loss falls far below
chance (6.93) when training works. The optimizer is torch's AdamW (no DeepSpeed op is
compiled, so no nvcc or ninja is needed); the collectives are DeepSpeed's ZeRO-2 reduce-
scatter and all-gather over NCCL. Rank 0 prints, every --every steps:
`step 100/300 loss 2.3456 samples/s 1234.5 tokens/s 98765.4`, then
`done: 300 steps in 12.3 s, 1234.5 samples/s, 98765.4 tokens/s, final loss 0.1234, bf16`.
"""

from __future__ import annotations

import argparse
import os
import time

import deepspeed
import torch
import torch.distributed as dist
from torch import nn

VOCAB = 1024


class TinyLM(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, context: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, width)
        self.position = nn.Parameter(torch.zeros(context, width))
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, batch_first=True)
        self.body = nn.TransformerEncoder(layer, layers)
        self.head = nn.Linear(width, VOCAB)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.embed(tokens) + self.position[: tokens.shape[1]]))


def batch(size: int, context: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Random tokens; each one's target is (7 * token + 3) mod VOCAB: a rule to learn, with
    data never seen twice. Chance is ln(1024) = 6.93; a model that learns goes far below."""
    tokens = torch.randint(0, VOCAB, (size, context), device=device)
    return tokens, (7 * tokens + 3) % VOCAB


def ranks_from_slurm() -> None:
    """Under DeepSpeed's slurm launcher srun starts this script itself, a task a GPU, and
    torch.distributed's env:// wants RANK, WORLD_SIZE and LOCAL_RANK: Slurm's SLURM_PROCID,
    SLURM_NTASKS and SLURM_LOCALID (MASTER_ADDR and MASTER_PORT come from the step)."""
    for name, slurm in (
        ("RANK", "SLURM_PROCID"),
        ("WORLD_SIZE", "SLURM_NTASKS"),
        ("LOCAL_RANK", "SLURM_LOCALID"),
    ):
        if name not in os.environ and slurm in os.environ:
            os.environ[name] = os.environ[slurm]


def main() -> None:
    ranks_from_slurm()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--micro-batch", type=int, default=16)
    parser.add_argument("--context", type=int, default=128)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--local_rank", type=int, default=int(os.environ.get("LOCAL_RANK", 0)))
    args = parser.parse_args()

    deepspeed.init_distributed(dist_backend="nccl")
    torch.cuda.set_device(args.local_rank)
    device = torch.device("cuda", args.local_rank)
    bf16 = torch.cuda.is_bf16_supported()
    torch.manual_seed(1234 + dist.get_rank())
    model = TinyLM(args.width, args.layers, 4, args.context)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    config = {
        "train_micro_batch_size_per_gpu": args.micro_batch,
        "gradient_accumulation_steps": 1,
        "zero_optimization": {"stage": 2},
        "zero_allow_untested_optimizer": True,
        "bf16": {"enabled": bf16},
        "fp16": {"enabled": False},
        "gradient_clipping": 1.0,
        "steps_per_print": 10**9,  # this script prints its own lines
    }
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
    loss_fn = nn.CrossEntropyLoss()
    world = dist.get_world_size()
    rank0 = dist.get_rank() == 0
    if rank0:
        params = sum(p.numel() for p in model.parameters())
        print(
            f"training: {params / 1e6:.1f}M parameters, ZeRO stage 2, "
            f"{'bf16' if bf16 else 'fp32'}, {world} GPU(s), {args.steps} steps",
            flush=True,
        )
    started = window = time.perf_counter()
    loss_value = float("nan")
    for step in range(1, args.steps + 1):
        inputs, targets = batch(args.micro_batch, args.context, device)
        logits = engine(inputs)
        loss = loss_fn(logits.reshape(-1, VOCAB).float(), targets.reshape(-1))
        engine.backward(loss)
        engine.step()
        if step % args.every == 0 or step == args.steps:
            torch.cuda.synchronize()
            loss_value = loss.item()
            now = time.perf_counter()
            steps_done = args.every if step % args.every == 0 else step % args.every
            samples = steps_done * args.micro_batch * world / (now - window)
            window = now
            if rank0:
                print(
                    f"step {step}/{args.steps} loss {loss_value:.4f} samples/s {samples:.1f} "
                    f"tokens/s {samples * args.context:.1f}",
                    flush=True,
                )
    elapsed = time.perf_counter() - started
    samples = args.steps * args.micro_batch * world / elapsed
    if rank0:
        print(
            f"done: {args.steps} steps in {elapsed:.1f} s, {samples:.1f} samples/s, "
            f"{samples * args.context:.1f} tokens/s, final loss {loss_value:.4f}, "
            f"{'bf16' if bf16 else 'fp32'}",
            flush=True,
        )
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
