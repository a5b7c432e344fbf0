"""steps/tools/torch_sweep.py with real PyTorch (CPU, gloo), where PyTorch is installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
SWEEP = Path(__file__).parent.parent / "steps" / "tools" / "torch_sweep.py"


def sweep():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("torch_sweep", SWEEP)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_rank_all_reduce_is_timed_out_of_place(tmp_path: Path) -> None:
    """In place, an all-reduce over one rank does no work (160,750 GB/s at 4G on an H100);
    out of place it copies the message, as NCCL does for nccl-tests."""
    tool = sweep()
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        data, out = tool.buffers("all_reduce", 1 << 20, 1, torch.device("cpu"))
        assert out.data_ptr() != data.data_ptr()
        out.fill_(7.0)  # what a no-op would leave
        tool.run_once("all_reduce", data, out)
        assert tool.wrong("all_reduce", out, 1) == 0  # the input reached the output
        many, same = tool.buffers("all_reduce", 1 << 20, 4, torch.device("cpu"))
        assert many is same  # with 2+ ranks in place, as before
    finally:
        dist.destroy_process_group()
