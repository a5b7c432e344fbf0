"""Saved flagcx and nccl-tests runs whose perf steps replay the real 4x H100 logs."""

from __future__ import annotations

from pathlib import Path

from tests.cli import run_wizard

DATA = Path(__file__).parent / "data"
FOUR = {  # collective: (FlagCX log, nccl-tests log), real runs on the 4x H100 machine
    "allreduce": ("flagcx-4xh100-allreduce.log", "nccl-tests-4xh100-all-reduce.log"),
    "allgather": ("flagcx-4xh100-allgather.log", "nccl-tests-4xh100-all-gather.log"),
    "reducescatter": ("flagcx-4xh100-reducescatter.log", "nccl-tests-4xh100-reduce-scatter.log"),
}
_PARAMS = "params:\n  link: {default: NVLink 4.0 ×18}\n  link_peak_gbs: {default: '450.0'}\n"


NCCL_STEPS = {
    "allreduce": "all-reduce",
    "allgather": "all-gather",
    "reducescatter": "reduce-scatter",
}
TORCH = {  # torch.distributed's sweep, from the torch-nccl recipe on a 4x H200 (NVLink 4.0 x18)
    "allreduce": "torch-4xh200-all-reduce.log",
    "allgather": "torch-4xh200-all-gather.log",
    "reducescatter": "torch-4xh200-reduce-scatter.log",
}


def record_four_gpu_runs(folder: Path, env: dict[str, str], *, torch: bool = False) -> None:
    """`wizard run` a flagcx and a nccl-tests recipe (and with `torch`, a torch-nccl one) that
    `cat` the real logs, under env's XDG_STATE_HOME, with the link the doctor read there."""
    recipes = [
        ("flagcx", {name: (logs[0], "flagcx-perf") for name, logs in FOUR.items()}),
        ("nccl-tests", {NCCL_STEPS[name]: (logs[1], "nccl-tests") for name, logs in FOUR.items()}),
    ]
    if torch:
        recipes.append(
            ("torch-nccl", {NCCL_STEPS[name]: (log, "nccl-tests") for name, log in TORCH.items()})
        )
    for recipe_id, steps in recipes:
        path = folder / f"{recipe_id}.yaml"
        path.write_text(
            f"id: {recipe_id}\ntitle: replay\n{_PARAMS}steps:\n"
            + "".join(
                f"  - id: {step}\n    run: cat {DATA / log}\n    parse: {parser}\n"
                for step, (log, parser) in steps.items()
            )
        )
        done = run_wizard(env, "run", str(path))
        assert done.returncode == 0, done.stdout + done.stderr
