"""Many hosts: host lists, the doctor on all of them, runs across them, the SSH mesh, Slurm."""
