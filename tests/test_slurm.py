"""Slurm: the wizard against a real Slurm cluster (tests/slurmlab.py)."""

from __future__ import annotations

from tests.slurmlab import SlurmLab, slurm_fixture  # noqa: F401 (the `slurm` fixture)


def test_the_lab_runs_a_step_on_every_node_with_its_gpus(slurm: SlurmLab) -> None:
    done = slurm.run(
        "srun", "-N3", "--gpus-per-node=2", "sh", "-c",
        "echo $SLURMD_NODENAME $SLURM_GPUS_ON_NODE $CUDA_VISIBLE_DEVICES",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == ["n1 2 0,1", "n2 2 0,1", "n3 2 0,1"]
    assert slurm.idle(), slurm.jobs()
