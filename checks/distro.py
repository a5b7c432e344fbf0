"""The distro a fix is written for: package manager, package names, NVIDIA's repository."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from checks.base import Context, Fix

NVIDIA_REPOS = "https://developer.download.nvidia.com/compute/cuda/repos"
CUDA_KEYRING = "cuda-keyring_1.1-1_all.deb"

_INSTALL = {
    "debian": "apt-get install -y",
    "rhel": "dnf install -y",
    "suse": "zypper install -y",
    "arch": "pacman -S --noconfirm",
}
_RHEL_LIKE = {"rhel", "centos", "rocky", "almalinux", "fedora", "ol", "amzn"}


@dataclass(frozen=True)
class Distro:
    id: str = ""
    version: str = ""
    like: tuple[str, ...] = ()
    arch: str = "x86_64"
    root: bool = False

    @classmethod
    def of(cls, ctx: Context) -> Distro:
        """The distro the `os` check found (checks that propose fixes run after it)."""
        return cls(
            id=ctx.fact("os.id", "") or "",
            version=ctx.fact("os.version", "") or "",
            like=tuple((ctx.fact("os.id_like", "") or "").split()),
            arch=ctx.fact("os.arch", "x86_64") or "x86_64",
            root=bool(ctx.fact("os.root", False)),
        )

    @property
    def family(self) -> str:
        names = {self.id, *self.like}
        if names & {"debian", "ubuntu"}:
            return "debian"
        if names & _RHEL_LIKE:
            return "rhel"
        if any("suse" in name for name in names):
            return "suse"
        if "arch" in names:
            return "arch"
        return "unknown"

    def sudo(self, command: str) -> str:
        return command if self.root else f"sudo {command}"

    def install(self, packages: dict[str, list[str]]) -> list[str] | None:
        """Commands that install the family's packages, or None for an unknown family."""
        names = packages.get(self.family)
        if not names or self.family not in _INSTALL:
            return None
        commands = [self.sudo("apt-get update")] if self.family == "debian" else []
        return [*commands, self.sudo(f"{_INSTALL[self.family]} {shlex.join(names)}")]

    def install_fix(self, title: str, packages: dict[str, list[str]], changes: str) -> list[Fix]:
        commands = self.install(packages)
        if commands is None:
            return []
        return [Fix(title, commands, needs_root=True, changes=changes)]

    @property
    def cuda_repo(self) -> str | None:
        """The folder of NVIDIA's CUDA repository for this distro (ubuntu2404, rhel9, ...)."""
        major = self.version.split(".")[0]
        if self.id == "ubuntu" and self.version:
            return "ubuntu" + self.version.replace(".", "")
        if self.id == "debian" and major:
            return f"debian{major}"
        if self.id in {"rhel", "rocky", "almalinux", "centos", "ol"} and major:
            return f"rhel{major}"
        if self.id in {"fedora", "amzn"} and major:
            return f"{self.id}{major}"
        if self.id == "sles" and major:
            return f"sles{major}"
        if self.id == "opensuse-leap" and major:
            return f"opensuse{major}"
        return None

    @property
    def cuda_arch(self) -> str:
        return "sbsa" if self.arch in {"aarch64", "arm64"} else "x86_64"

    def nvidia_repo(self) -> list[str] | None:
        """Commands that add NVIDIA's CUDA repository the current way (cuda-keyring, never
        apt-key), or None where NVIDIA publishes none for this distro."""
        repo = self.cuda_repo
        if repo is None:
            return None
        base = f"{NVIDIA_REPOS}/{repo}/{self.cuda_arch}"
        q = shlex.quote  # the repository's name comes from /etc/os-release
        if self.family == "debian":
            return [
                f"wget -q {q(f'{base}/{CUDA_KEYRING}')}",
                self.sudo(f"dpkg -i {CUDA_KEYRING}"),
                self.sudo("apt-get update"),
            ]
        if self.family == "rhel":
            return [self.sudo(f"dnf config-manager --add-repo {q(f'{base}/cuda-{repo}.repo')}")]
        if self.family == "suse":
            return [
                self.sudo(f"zypper addrepo {q(f'{base}/cuda-{repo}.repo')}"),
                self.sudo("zypper refresh"),
            ]
        return None

    def nvidia_packages_fix(
        self, title: str, packages: dict[str, list[str]], changes: str
    ) -> list[Fix]:
        """Install packages from NVIDIA's repository, adding the repository first."""
        repo = self.nvidia_repo()
        names = packages.get(self.family)
        if repo is None or not names:
            return []
        install = self.sudo(f"{_INSTALL[self.family]} {shlex.join(names)}")
        return [Fix(title, [*repo, install], needs_root=True, changes=changes)]
