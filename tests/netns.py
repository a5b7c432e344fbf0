"""Real remote hosts for tests: network namespaces on a bridge, each with its own sshd.

The namespaces share this machine's filesystem (the stand-in for a shared folder); each has
its own address, its own sshd (on port 22, or another), and its own environment through
sshd's SetEnv. The client side is an ssh config file that names every host, with a key and a
known_hosts file made for the lab, so nothing in ~/.ssh is read or changed. Everything is
removed when the lab closes, also when a test fails.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = "/usr/sbin/sshd"
HOME_SSH = Path("/root/.ssh")
_LABS = itertools.count()


def available() -> str | None:
    """Why a lab cannot be built here, or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not Path(SSHD).exists() or not shutil.which("ssh"):
        return "openssh-server and openssh-client are not installed (.ci/run installs them)"
    if subprocess.run(["ip", "netns", "list"], capture_output=True, check=False).returncode:
        return "`ip netns` does not work here"
    return None


@dataclass
class LabHost:
    name: str  # the alias in the lab's ssh config
    address: str
    port: int
    namespace: str
    sshd: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)  # sshd's SetEnv for its sessions
    authorized: Path | None = None  # its own authorized_keys, checked with StrictModes
    only_from: str | None = None  # sshd's AllowUsers root@ADDRESS: logins from there alone
    # Folders this host has a disk of its own at: path -> the folder mounted there for it
    # (a bind mount in the host's own mount namespace; elsewhere the path is this machine's).
    private: dict[Path, Path] = field(default_factory=dict)
    # A ~/.ssh of its own (empty at first): sshd also reads its authorized_keys there, with
    # StrictModes, beside the lab's file that lets the wizard in; ssh run there uses it.
    own_ssh: Path | None = None
    hostkey: Path | None = None  # its own host key
    passwords: bool = False  # sshd also takes passwords (for a user that has one)
    cpus: str | None = None  # the CPUs its sshd (and so every login) may use: taskset's list


class Lab:
    def __init__(self, folder: Path, count: int, *, ports: dict[int, int] | None = None) -> None:
        tag = f"{os.getpid() % 10000}{next(_LABS) % 100:02d}"  # unique names, <= 15 chars
        self.folder = folder
        self.bridge = f"wzb{tag}"
        subnet = 100 + os.getpid() % 150
        self.prefix = f"10.251.{subnet}"
        self.hosts = [
            LabHost(f"node{i}", f"{self.prefix}.{10 + i}", (ports or {}).get(i, 22), f"wz{tag}n{i}")
            for i in range(count)
        ]
        self.key = folder / "id_ed25519"
        self.config = folder / "ssh_config"
        self.known = folder / "known_hosts"
        self.authorized = folder / "authorized_keys"

    # -- building ---------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        try:
            self._network()
            self._keys()
            for host in self.hosts:
                self.start(host)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def here(self) -> str:
        """This machine's address on the lab's bridge: where the wizard connects from."""
        return f"{self.prefix}.1"

    def _network(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.here}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i, host in enumerate(self.hosts):
            outside, inside = f"{self.bridge}v{i}", f"{self.bridge}p{i}"
            _ip("netns", "add", host.namespace)
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", host.namespace)
            _ip("link", "set", outside, "master", self.bridge)
            _ip("link", "set", outside, "up")
            inns = ["netns", "exec", host.namespace, "ip"]
            _ip(*inns, "addr", "add", f"{host.address}/24", "dev", inside)
            _ip(*inns, "link", "set", inside, "up")
            _ip(*inns, "link", "set", "lo", "up")

    def _keys(self) -> None:
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)], check=True
        )
        self.authorized.write_text(self.key.with_suffix(".pub").read_text())
        self.authorized.chmod(0o600)
        for host in self.hosts:  # each its own host key, as separate machines have
            host.hostkey = self.folder / f"host_{host.name}"
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host.hostkey)],
                check=True,
            )
        self.known.write_text("".join(self.known_line(h) for h in self.hosts))
        self.config.write_text(
            "".join(
                f"Host {h.name}\n  HostName {h.address}\n  Port {h.port}\n  User root\n"
                f"  IdentityFile {self.key}\n  UserKnownHostsFile {self.known}\n"
                "  StrictHostKeyChecking yes\n  IdentitiesOnly yes\n"
                for h in self.hosts
            )
        )

    def _secure_authorized(self) -> Path:
        """The lab's authorized_keys where StrictModes accepts it: every folder above it
        root's and not writable by others (/tmp, which holds tests' folders, is)."""
        folder = Path("/run") / f"wizard-lab-{self.bridge}"
        folder.mkdir(mode=0o755, exist_ok=True)
        path = folder / "authorized_keys"
        shutil.copy(self.authorized, path)
        path.chmod(0o600)
        return path

    def known_line(self, host: LabHost) -> str:
        """The host's known_hosts line, as ssh-keyscan would print it."""
        assert host.hostkey is not None
        public = host.hostkey.with_suffix(".pub").read_text().split()[:2]
        return f"{_known_name(host)} {' '.join(public)}\n"

    def give_own_ssh(self, host: LabHost) -> Path:
        """An empty ~/.ssh of the host's own, mounted over /root/.ssh there (restart it)."""
        folder = self.folder / f"dot-ssh-{host.name}"
        folder.mkdir(mode=0o700, exist_ok=True)
        HOME_SSH.mkdir(mode=0o700, exist_ok=True)  # the mount point
        host.own_ssh = folder
        host.private[HOME_SSH] = folder
        return folder

    def sshd_config(self, host: LabHost) -> Path:
        """The host's sshd_config (with its own ~/.ssh, it is /etc/ssh/sshd_config there)."""
        return self.folder / f"sshd_{host.name}"

    def start(self, host: LabHost, *, rewrite: bool = True) -> None:
        """(Re)start the host's sshd, with its SetEnv; `rewrite=False` keeps its config file
        as something else left it (a fix the wizard printed, say)."""
        self.stop(host)
        Path("/run/sshd").mkdir(exist_ok=True)
        config = self.sshd_config(host)
        setenv = (
            "SetEnv " + " ".join(f"{k}={v}" for k, v in host.env.items()) + "\n" if host.env else ""
        )
        keys, strict = (host.authorized, "yes") if host.authorized else (self.authorized, "no")
        if host.own_ssh:
            keys, strict = f"{self._secure_authorized()} .ssh/authorized_keys", "yes"
        if rewrite:
            self._write_config(host, config, keys, strict, setenv)
        sshd = [SSHD, "-D", "-e", "-f", str(config)]
        if host.own_ssh:  # a machine of its own: sshd -T there reads this file
            host.private[Path("/etc/ssh/sshd_config")] = config
            sshd = [SSHD, "-D", "-e", "-f", "/etc/ssh/sshd_config"]
        self._spawn(host, sshd)

    def _write_config(
        self, host: LabHost, config: Path, keys: object, strict: str, setenv: str
    ) -> None:
        config.write_text(
            f"ListenAddress {host.address}\nPort {host.port}\nHostKey {host.hostkey}\n"
            f"AuthorizedKeysFile {keys}\nPidFile {self.folder}/sshd_{host.name}.pid\n"
            "PermitRootLogin prohibit-password\n"
            f"PasswordAuthentication {'yes' if host.passwords else 'no'}\n"
            f"KbdInteractiveAuthentication no\nUsePAM no\nStrictModes {strict}\n"
            + (f"AllowUsers root@{host.only_from}\n" if host.only_from else "")
            + setenv
        )

    def _spawn(self, host: LabHost, sshd: list[str]) -> None:
        if host.private:
            mounts = " && ".join(
                f"mount --bind {shlex.quote(str(b))} {shlex.quote(str(p))}"
                for p, b in host.private.items()
            )
            sshd = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                    f"{mounts} && exec {shlex.join(sshd)}"]  # fmt: skip
        if host.cpus:  # a smaller machine: `nproc` there counts these CPUs only
            sshd = ["taskset", "-c", host.cpus, *sshd]
        host.sshd = subprocess.Popen(
            ["ip", "netns", "exec", host.namespace, *sshd],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = subprocess.run(
                ["ip", "netns", "exec", host.namespace, "ss", "-ltn"],
                capture_output=True,
                text=True,
                check=False,
            )
            if f"{host.address}:{host.port}" in probe.stdout:
                return
            time.sleep(0.05)
        raise RuntimeError(f"sshd for {host.name} did not start")

    def stop(self, host: LabHost) -> None:
        if host.sshd is not None and host.sshd.poll() is None:
            host.sshd.terminate()
            host.sshd.wait(timeout=10)
        host.sshd = None

    def close(self) -> None:
        for i, host in enumerate(self.hosts):
            self.stop(host)
            # Anything left inside (a session's sshd child) would keep the namespace alive.
            pids = subprocess.run(
                ["ip", "netns", "pids", host.namespace], capture_output=True, text=True, check=False
            ).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            for command in (
                ["netns", "del", host.namespace],
                ["link", "del", f"{self.bridge}v{i}"],
            ):
                subprocess.run(["ip", *command], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)
        shutil.rmtree(Path("/run") / f"wizard-lab-{self.bridge}", ignore_errors=True)

    def ssh(self, host: LabHost, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ssh", "-F", str(self.config), "-o", "BatchMode=yes", host.name, command],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )


def with_own_ssh(folder: Path, argv: list[str]) -> list[str]:
    """argv run with `folder` as this machine's /root/.ssh (in a mount namespace of its
    own): a wizard that reads and writes its ~/.ssh for real, without touching this one's."""
    HOME_SSH.mkdir(mode=0o700, exist_ok=True)
    mount = f'mount --bind {shlex.quote(str(folder))} {HOME_SSH} && exec "$@"'
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", mount, "sh", *argv]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def _known_name(host: LabHost) -> str:
    """As known_hosts spells it: the bare address for port 22, [address]:port otherwise."""
    return host.address if host.port == 22 else f"[{host.address}]:{host.port}"
