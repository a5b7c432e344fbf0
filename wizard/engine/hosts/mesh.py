"""The SSH mesh a launcher needs: this machine to every host, and every host to every other.

`survey()` looks (nothing changes) and returns findings like the doctor's, each with fixes
whose commands are exactly what would run here: `ssh HOST '...'` for a change on a host,
with the user's own ssh. What it checks:
- this machine has a key (the first IdentityFile of `ssh -G` that exists);
- it logs in to each host in BatchMode; else why: an unknown host key (shown with its
  fingerprints, for the user to confirm; never accepted unseen), a refused key (only a
  password works: `ssh-copy-id`, which asks it once), or no sshd answering (advice);
- on each host: `~/.ssh` 700 and `authorized_keys` 600, owned by the user (sshd's
  StrictModes ignores keys otherwise), and a key of its own;
- each host's key in every other's authorized_keys, and every other's host key in its
  known_hosts: the key this machine already trusts for that host, so nothing is taken on
  faith from the network.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from checks.base import Finding, Fix, Status
from wizard.engine.hosts.doctor_all import read_ssh_round, ssh_round, ssh_round_timeout
from wizard.engine.hosts.hostlist import HostSpec
from wizard.engine.hosts.ssh import ssh_to
from wizard.host.local import capture

KEY_TYPES = ("ed25519", "ecdsa", "rsa")
_APPEND = "umask 077 && mkdir -p ~/.ssh && printf '%s\\n'"  # then the lines, >> the file
TIMEOUT_S = 20


@dataclass
class YourFix(Fix):
    """A fix that needs the user at the terminal: `--yes` never applies it."""

    needs_you: str = ""  # what the user does: compare fingerprints, type a password


@dataclass
class Peer:
    """One host as this machine reaches it, and what it told about its ~/.ssh."""

    spec: HostSpec
    ssh: list[str]  # the ssh command that reaches it from here, less the remote command
    address: str = ""  # the address ssh connects to
    login_error: str | None = None  # None: BatchMode login works
    user: str = ""
    ssh_dir: tuple[str, str] | None = None  # (mode, owner) of ~/.ssh
    authorized: tuple[str, str] | None = None  # (mode, owner) of ~/.ssh/authorized_keys
    authorized_keys: set[str] = field(default_factory=set)  # "type blob" of each key
    public_key: str = ""  # its own key, "type blob comment"
    knows: set[str] = field(default_factory=set)  # known_hosts names it has an entry for
    sshd: dict[str, list[str]] = field(default_factory=dict)  # `sshd -T`, read as root only

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def known_name(self) -> str:
        """How known_hosts names this host for a host that dials it as it was given."""
        return f"[{self.spec.name}]:{self.spec.port}" if self.spec.port else self.spec.name

    def command(self, script: str) -> str:
        """The local command that runs `script` there, as it is shown and run."""
        return f"{shlex.join(self.ssh)} {_readable_quote(script)}"


@dataclass
class Survey:
    key: str | None  # this machine's private key
    peers: list[Peer]
    findings: list[Finding]

    @property
    def ok(self) -> bool:
        return all(f.status is not Status.FAIL for f in self.findings)


class Mesh:
    def __init__(self, specs: list[HostSpec], ssh_config: str | None = None) -> None:
        self.specs, self.ssh_config = specs, ssh_config

    def ssh_argv(self, spec: HostSpec) -> list[str]:
        return ssh_to(spec, config=self.ssh_config)

    def settings(self, spec: HostSpec) -> dict[str, list[str]]:
        """`ssh -G`: what ssh would use for the host (identity files, known_hosts files,
        the address), after the config file."""
        done = _run(ssh_to(spec, config=self.ssh_config, options=["-G"]))
        found: dict[str, list[str]] = {}
        for line in done.stdout.splitlines():
            key, _, value = line.partition(" ")
            found.setdefault(key, []).append(value)
        return found

    # -- looking ----------------------------------------------------------------------------

    def survey(self) -> Survey:
        first = self.settings(self.specs[0])
        key = next((k for k in map(_expand, first.get("identityfile", [])) if _has_pair(k)), None)
        peers = [Peer(s, self.ssh_argv(s)) for s in self.specs]
        with ThreadPoolExecutor(max_workers=min(32, len(peers))) as pool:
            list(pool.map(self._look, peers))
        findings = [] if key else [_no_key_here(first)]
        for peer in peers:
            findings += self._login_findings(peer, key)
        reached = [p for p in peers if p.login_error is None]
        for peer in reached:
            findings += _host_findings(peer)
            findings += _sshd_findings(peer, [p for p in peers if p is not peer])
        findings += self._mesh_findings(reached)
        return Survey(key, peers, findings)

    def _look(self, peer: Peer) -> None:
        settings = self.settings(peer.spec)
        peer.address = (settings.get("hostname") or [peer.spec.name])[0]
        names = " ".join(shlex.quote(s.name) for s in self.specs)
        ports = {s.name: s.port for s in self.specs}
        lookups = " ".join(
            shlex.quote(f"[{n}]:{ports[n]}" if ports[n] else n) for n in names.split()
        )
        script = (
            'echo "user $(id -un)"; '
            '[ -d ~/.ssh ] && echo "dir $(stat -c "%a %U" ~/.ssh)"; '
            "if [ -f ~/.ssh/authorized_keys ]; then "
            'echo "auth $(stat -c "%a %U" ~/.ssh/authorized_keys)"; '
            "sed 's/^/key /' ~/.ssh/authorized_keys; fi; "
            f"for t in {' '.join(KEY_TYPES)}; do "
            'if [ -f ~/.ssh/id_$t.pub ]; then echo "pub $(cat ~/.ssh/id_$t.pub)"; break; fi; done; '
            f"for n in {lookups}; do "
            'if ssh-keygen -F "$n" >/dev/null 2>&1; then echo "knows $n"; fi; done; '
            # sshd's effective settings: only root may ask (and change them)
            'if [ "$(id -u)" = 0 ]; then PATH="$PATH:/usr/sbin:/sbin" sshd -T 2>/dev/null | '
            "grep -iE '^(permitrootlogin|pubkeyauthentication|allowusers|denyusers) ' | "
            "sed 's/^/sshd /'; fi; true"
        )
        done = _run([*peer.ssh, script])
        if done.returncode != 0:
            lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
            peer.login_error = lines[-1].strip() if lines else f"ssh exited {done.returncode}"
            peer.login_error = _host_key_words(done.stderr) or peer.login_error
            return
        for line in done.stdout.splitlines():
            kind, _, rest = line.partition(" ")
            if kind == "user":
                peer.user = rest
            elif kind in ("dir", "auth") and len(rest.split()) == 2:
                mode, owner = rest.split()
                setattr(peer, "ssh_dir" if kind == "dir" else "authorized", (mode, owner))
            elif kind == "key" and (blob := key_blob(rest)):
                peer.authorized_keys.add(blob)
            elif kind == "pub":
                peer.public_key = rest.strip()
            elif kind == "knows":
                peer.knows.add(rest)
            elif kind == "sshd" and " " in rest:
                key, _, value = rest.partition(" ")
                peer.sshd.setdefault(key.lower(), []).append(value.strip())

    def _login_findings(self, peer: Peer, key: str | None) -> list[Finding]:
        fid, why = f"ssh.login:{peer.label}", peer.login_error
        if why is None:
            return [Finding(fid, f"SSH to {peer.label}", Status.OK, "logs in without a password")]
        if "host key" in why.lower() and "changed" in why.lower():
            return [_changed_host_key(peer, why)]
        if "host key" in why.lower():
            return [self._unknown_host_key(peer, why)]
        if "Permission denied" in why:
            copy = ["ssh-copy-id", *(["-F", self.ssh_config] if self.ssh_config else [])]
            copy += ["-i", f"{key}.pub"] if key else []
            copy += [*(["-p", str(peer.spec.port)] if peer.spec.port else []), "--"]
            copy.append(peer.spec.destination)
            return [
                Finding(
                    fid,
                    f"SSH to {peer.label}",
                    Status.FAIL,
                    f"{peer.label} does not take this machine's key ({why})",
                    details=["only a password works there: ssh-copy-id asks it once"],
                    fixes=[
                        YourFix(
                            f"Copy this machine's key to {peer.label} (asks its password once)",
                            [shlex.join(copy)],
                            changes=f"appends your public key to ~/.ssh/authorized_keys on "
                            f"{peer.label}",
                            needs_you=f"type {peer.label}'s password",
                        )
                    ],
                )
            ]
        return [_no_sshd(peer, why)]

    def _unknown_host_key(self, peer: Peer, why: str) -> Finding:
        """The host's keys as ssh-keyscan gets them, with fingerprints to compare: the fix
        appends exactly these lines, after the user said they match."""
        port = ["-p", str(peer.spec.port)] if peer.spec.port else []
        scan = _run(["ssh-keyscan", "-T", "5", *port, "--", peer.address])
        lines = [ln for ln in scan.stdout.splitlines() if ln and not ln.startswith("#")]
        settings = self.settings(peer.spec)
        known_file = _known_files(settings)[0]
        prints = fingerprints(lines)
        fixes = []
        if lines:
            name = _lookup_name(settings, peer.address)
            entries = [f"{name} {' '.join(ln.split()[1:3])}" for ln in lines]
            fixes.append(
                YourFix(
                    f"Trust {peer.label}'s host key (compare the fingerprints first)",
                    [
                        f"printf '%s\\n' {' '.join(shlex.quote(e) for e in entries)} "
                        f">> {_shell_path(known_file)}"
                    ],
                    changes=f"adds {len(entries)} line(s) to {known_file}",
                    needs_you="compare the fingerprints with the host's own",
                )
            )
        return Finding(
            f"ssh.login:{peer.label}",
            f"SSH to {peer.label}",
            Status.FAIL,
            f"{peer.label}'s host key is not known here ({why})",
            details=[f"{peer.label} offers {p}" for p in prints]
            + ["check them against the host's own `ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub`"],
            fixes=fixes or [Fix("No key could be read: is sshd running?", [], manual=True)],
        )

    def _mesh_findings(self, peers: list[Peer]) -> list[Finding]:
        findings = []
        trusted = self._trusted_host_keys(peers)
        for target in peers:
            missing = [
                p for p in peers if p is not target and p.public_key
                and key_blob(p.public_key) not in target.authorized_keys
            ]  # fmt: skip
            if missing:
                keys = " ".join(shlex.quote(p.public_key) for p in missing)
                script = f"{_APPEND} {keys} >> ~/.ssh/authorized_keys"
                findings.append(
                    Finding(
                        f"ssh.authorized:{target.label}",
                        f"Keys {target.label} accepts",
                        Status.FAIL,
                        f"{target.label} does not take the keys of "
                        f"{', '.join(p.label for p in missing)}",
                        fixes=[
                            Fix(
                                f"Add their keys to {target.label}'s authorized_keys",
                                [target.command(script)],
                                changes=f"appends {len(missing)} key(s) on {target.label}",
                            )
                        ],
                    )
                )
        for source in peers:
            unknown = [p for p in peers if p is not source and p.known_name not in source.knows]
            lines = [f"{p.known_name} {trusted[p.label]}" for p in unknown if p.label in trusted]
            if not unknown:
                continue
            fixes = []
            if lines:
                quoted = " ".join(shlex.quote(line) for line in lines)
                script = f"{_APPEND} {quoted} >> ~/.ssh/known_hosts"
                fixes.append(
                    Fix(
                        f"Add the host keys this machine trusts to {source.label}'s known_hosts",
                        [source.command(script)],
                        changes=f"appends {len(lines)} line(s) on {source.label}",
                    )
                )
            untrusted = [p.label for p in unknown if p.label not in trusted]
            findings.append(
                Finding(
                    f"ssh.known_hosts:{source.label}",
                    f"Host keys {source.label} knows",
                    Status.FAIL,
                    f"{source.label} does not know the host keys of "
                    f"{', '.join(p.label for p in unknown)}",
                    details=[f"this machine has no trusted key for {', '.join(untrusted)} to give"]
                    if untrusted
                    else [],
                    fixes=fixes,
                )
            )
        return findings

    def _trusted_host_keys(self, peers: list[Peer]) -> dict[str, str]:
        """For each host, "type blob" of the key this machine's known_hosts holds for it
        (the one its own logins were checked against)."""
        trusted = {}
        for peer in peers:
            settings = self.settings(peer.spec)
            name = _lookup_name(settings, peer.address)
            for known in _known_files(settings):
                found = _run(["ssh-keygen", "-F", name, "-f", _expand(known)])
                for line in found.stdout.splitlines():
                    if line and not line.startswith("#") and (blob := key_blob(line)):
                        trusted[peer.label] = blob
                        break
                if peer.label in trusted:
                    break
        return trusted

    def directions(self, peers: list[Peer]) -> dict[tuple[str, str], str | None]:
        """From every reachable host, `ssh -o BatchMode=yes OTHER true` to each other, in
        one login per host (as the doctor's --ssh-mesh does): None where it works, else
        ssh's last words."""
        result: dict[tuple[str, str], str | None] = {}

        def from_one(source: Peer) -> None:
            targets = [p.spec for p in peers if p is not source]
            script = ssh_round(targets, self.ssh_config)
            done = capture([*source.ssh, script], ssh_round_timeout(targets))
            for label, why in read_ssh_round(done.stdout, targets).items():
                result[(source.label, label)] = why

        reached = [p for p in peers if p.login_error is None]
        with ThreadPoolExecutor(max_workers=max(1, min(32, len(reached)))) as pool:
            list(pool.map(from_one, reached))
        return result


# -- findings that need no mesh ------------------------------------------------------------


def _no_key_here(settings: dict[str, list[str]]) -> Finding:
    path = "~/.ssh/id_ed25519"
    return Finding(
        "ssh.key",
        "This machine's SSH key",
        Status.FAIL,
        "no SSH key here (none of ssh's IdentityFile paths has one)",
        details=[f"ssh looks for: {', '.join(settings.get('identityfile', []))}"],
        fixes=[
            Fix(
                "Make an ed25519 key without a passphrase (mpirun cannot type one)",
                [f"ssh-keygen -q -t ed25519 -N '' -f {path}"],  # a constant: ~ for the shell
                changes=f"creates {path} and {path}.pub",
            )
        ],
    )


def _host_findings(peer: Peer) -> list[Finding]:
    findings = []
    problems, commands = [], []
    if peer.ssh_dir and (int(peer.ssh_dir[0], 8) & 0o077):
        problems.append(f"~/.ssh is mode {peer.ssh_dir[0]} (700 wanted)")
        commands.append("chmod 700 ~/.ssh")
    if peer.authorized and (int(peer.authorized[0], 8) & 0o077):
        problems.append(f"authorized_keys is mode {peer.authorized[0]} (600 wanted)")
        commands.append("chmod 600 ~/.ssh/authorized_keys")
    owners = {o for _, o in filter(None, (peer.ssh_dir, peer.authorized))}
    if peer.user and owners - {peer.user}:
        problems.append(f"owned by {', '.join(sorted(owners))}, not {peer.user}")
        commands.append(f"chown {shlex.quote(peer.user + ':')} ~/.ssh ~/.ssh/authorized_keys")
    if problems:
        needs_root = any(c.startswith("chown") for c in commands) and peer.user != "root"
        findings.append(
            Finding(
                f"ssh.perms:{peer.label}",
                f"~/.ssh on {peer.label}",
                Status.FAIL,
                "; ".join(problems) + ": sshd's StrictModes ignores the keys there",
                fixes=[
                    Fix(
                        f"Set the modes sshd wants on {peer.label}",
                        [peer.command(" && ".join(commands))],
                        needs_root=needs_root,
                        manual=needs_root,  # a chown by another user needs root there
                        changes=f"modes of ~/.ssh on {peer.label}",
                    )
                ],
            )
        )
    if not peer.public_key:
        script = "mkdir -p -m 700 ~/.ssh && ssh-keygen -q -t ed25519 -N '' -f ~/.ssh/id_ed25519"
        findings.append(
            Finding(
                f"ssh.key:{peer.label}",
                f"{peer.label}'s SSH key",
                Status.FAIL,
                f"{peer.label} has no SSH key to reach the other hosts with",
                fixes=[
                    Fix(
                        f"Make an ed25519 key on {peer.label}",
                        [peer.command(script)],
                        changes=f"creates ~/.ssh/id_ed25519 on {peer.label}",
                    )
                ],
            )
        )
    return findings


SSHD_CONFIG = "/etc/ssh/sshd_config"
RELOAD = "sshd -t && (systemctl reload ssh 2>/dev/null || service ssh reload)"


def _sshd_findings(peer: Peer, others: list[Peer]) -> list[Finding]:
    """What sshd's own settings refuse to the other hosts (read with `sshd -T`, as root):
    key logins off, root refused, an AllowUsers that names none of them. The changes are
    shown as the exact commands to run there as root, not run from here."""
    if not peer.sshd:
        return []
    problems, commands = [], []
    user = peer.user or "root"
    if peer.sshd.get("pubkeyauthentication", ["yes"])[0] == "no":
        problems.append("key logins are off (PubkeyAuthentication no)")
        commands.append(_set_option("PubkeyAuthentication", "yes"))
    if user == "root" and peer.sshd.get("permitrootlogin", ["yes"])[0] == "no":
        problems.append("root may not log in (PermitRootLogin no)")
        commands.append(_set_option("PermitRootLogin", "prohibit-password"))
    allowed = " ".join(peer.sshd.get("allowusers", [])).split()
    refused = [o for o in others if allowed and not _allowed(user, o.address, allowed)]
    if refused:
        names = " ".join(f"{user}@{o.address}" for o in refused)
        problems.append(
            f"AllowUsers ({' '.join(allowed)}) refuses logins from "
            + ", ".join(o.label for o in refused)
        )
        commands.append(f"sed -i {shlex.quote(f's/^AllowUsers .*/& {names}/')} {SSHD_CONFIG}")
    if not problems:
        return []
    return [
        Finding(
            f"ssh.sshd:{peer.label}",
            f"sshd on {peer.label}",
            Status.FAIL,
            f"sshd on {peer.label}: " + "; ".join(problems),
            details=[f"as root on {peer.label} (each checked by `sshd -t` before the reload)"],
            fixes=[
                Fix(
                    f"Change {SSHD_CONFIG} on {peer.label} (as root there)",
                    [*commands, RELOAD],
                    needs_root=True,
                    manual=True,
                    changes=f"sshd's settings on {peer.label}",
                )
            ],
        )
    ]


def _set_option(name: str, value: str) -> str:
    return f"sed -i 's/^#\\?{name} .*/{name} {value}/I' {SSHD_CONFIG}"


def _allowed(user: str, address: str, entries: list[str]) -> bool:
    """Whether sshd's AllowUsers entries (USER or USER@HOST, HOST a pattern or a CIDR) let
    `user` in from `address`."""
    import fnmatch
    import ipaddress

    for entry in entries:
        who, _, where = entry.partition("@")
        if not fnmatch.fnmatch(user, who):
            continue
        if not where:
            return True
        try:
            if "/" in where and ipaddress.ip_address(address) in ipaddress.ip_network(where):
                return True
        except ValueError:
            pass
        if fnmatch.fnmatch(address, where):
            return True
    return False


def _no_sshd(peer: Peer, why: str) -> Finding:
    port = peer.spec.port or 22
    if "Could not resolve hostname" in why:
        return Finding(
            f"ssh.login:{peer.label}",
            f"SSH to {peer.label}",
            Status.FAIL,
            f"{peer.spec.name} is not a name this machine can resolve",
            fixes=[
                Fix(
                    f"Name {peer.spec.name}'s address",
                    [
                        f"echo 'ADDRESS {peer.spec.name}' >> /etc/hosts   # as root",
                        f"# or in ~/.ssh/config: Host {peer.spec.name} / HostName ADDRESS",
                    ],
                    manual=True,
                )
            ],
        )
    return Finding(
        f"ssh.login:{peer.label}",
        f"SSH to {peer.label}",
        Status.FAIL,
        f"cannot reach {peer.label}: {why}",
        details=[f"sshd must run on {peer.spec.name} and listen on port {port}"],
        fixes=[
            Fix(
                f"Start sshd on {peer.spec.name} (as root there)",
                ["service ssh start   # or: systemctl enable --now ssh"]
                + (
                    [
                        f"echo 'Port {port}' >> /etc/ssh/sshd_config && service ssh restart",
                    ]
                    if peer.spec.port
                    else []
                ),
                needs_root=True,
                manual=True,
            )
        ],
    )


def _changed_host_key(peer: Peer, why: str) -> Finding:
    name = peer.known_name
    return Finding(
        f"ssh.login:{peer.label}",
        f"SSH to {peer.label}",
        Status.FAIL,
        f"{peer.label}'s host key has CHANGED since it was trusted ({why})",
        details=["a reinstalled host, or someone in between: ask whoever runs it"],
        fixes=[
            Fix(
                "Once you know why it changed, forget the old key",
                [f"ssh-keygen -R {shlex.quote(name)}"],
                manual=True,
            )
        ],
    )


# -- helpers -------------------------------------------------------------------------------


def key_blob(line: str) -> str:
    """ "type blob" of a key line (authorized_keys options and comments, known_hosts names
    dropped), or ""."""
    words = line.split()
    for i, word in enumerate(words[:-1]):
        if word.startswith(("ssh-", "ecdsa-", "sk-")):
            return f"{word} {words[i + 1]}"
    return ""


def fingerprints(lines: list[str]) -> list[str]:
    """`ssh-keygen -lf` of key lines: "256 SHA256:... (ED25519)"."""
    if not lines:
        return []
    with tempfile.NamedTemporaryFile("w", suffix=".pub") as f:
        f.write("\n".join(lines) + "\n")
        f.flush()
        done = _run(["ssh-keygen", "-lf", f.name])
    return [f"{w[0]} {w[1]} {w[-1]}" for w in (ln.split() for ln in done.stdout.splitlines()) if w]


def _lookup_name(settings: dict[str, list[str]], address: str) -> str:
    """The name ssh looks a host's key up by: HostKeyAlias, else the address it dials,
    as `[address]:port` off port 22."""
    alias = (settings.get("hostkeyalias") or [""])[0]
    port = (settings.get("port") or ["22"])[0]
    return alias or (address if port == "22" else f"[{address}]:{port}")


def _known_files(settings: dict[str, list[str]]) -> list[str]:
    files = " ".join(settings.get("userknownhostsfile") or []).split()
    return files or ["~/.ssh/known_hosts"]


def _host_key_words(stderr: str) -> str | None:
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr:
        return "host key changed: Host key verification failed."
    if "Host key verification failed" in stderr or "No ED25519 host key is known" in stderr:
        return "Host key verification failed (no known host key)"
    return None


def _has_pair(path: str) -> bool:
    return os.path.isfile(path) and os.path.isfile(path + ".pub")


def _expand(path: str) -> str:
    return os.path.expanduser(path)


def _readable_quote(script: str) -> str:
    """One shell word, in double quotes where that needs no escapes (the script's own
    single quotes then read as they are), else as shlex quotes it."""
    if "'" in script and not re.search(r'[$`"!]|\\(?!n)', script):
        return f'"{script}"'
    return shlex.quote(script)


def _shell_path(path: str) -> str:
    """A path for a shell command: `~/` stays unquoted so the shell expands it."""
    if path.startswith("~/"):
        return "~/" + shlex.quote(path[2:])
    return shlex.quote(path)


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return capture(argv, TIMEOUT_S)
