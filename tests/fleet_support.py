"""Loopback "hosts" for the fleet tests: one sshd on 127.0.0.x addresses with a throw-away key.

Every host is this machine reached over ssh on its own loopback address, with its own install
prefix and output directory, so the playbooks run exactly as against remote hosts (real ssh, real
Ansible connection plugin) while all traffic stays on loopback.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")
SFTP_SERVERS = (Path("/usr/lib/openssh/sftp-server"), Path("/usr/lib/ssh/sftp-server"))


@dataclass(frozen=True)
class LoopbackHost:
    name: str
    address: str
    port: int
    prefix: Path  # vbench's install and work directory on this "host"


def _free_port(addresses: list[str]) -> int:
    for port in range(2222, 2400):
        try:
            for addr in addresses:
                with socket.socket() as s:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind((addr, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port in 2222..2399 on the loopback addresses")


def _wait_listening(address: str, port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((address, port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"sshd did not listen on {address}:{port}")


@contextmanager
def loopback_hosts(workdir: Path, names: list[str]) -> Iterator[tuple[list[LoopbackHost], Path]]:
    """Start sshd for `names` on 127.0.0.2, .3, ...; yield the hosts and the private key."""
    workdir.mkdir(parents=True, exist_ok=True)
    key = workdir / "id_ed25519"
    hostkey = workdir / "ssh_host_ed25519_key"
    for path in (key, hostkey):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    authorized = workdir / "authorized_keys"
    shutil.copy(key.with_suffix(".pub"), authorized)
    authorized.chmod(0o600)
    addresses = [f"127.0.0.{i + 2}" for i in range(len(names))]
    port = _free_port(addresses)
    sftp = next((p for p in SFTP_SERVERS if p.exists()), None)
    config = workdir / "sshd_config"
    config.write_text(
        "".join(f"ListenAddress {a}:{port}\n" for a in addresses)
        + f"HostKey {hostkey}\n"
        + f"AuthorizedKeysFile {authorized}\n"
        + f"PidFile {workdir / 'sshd.pid'}\n"
        + "PermitRootLogin prohibit-password\n"
        + "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        + "UsePAM no\nStrictModes no\nX11Forwarding no\nAllowTcpForwarding no\n"
        + (f"Subsystem sftp {sftp}\n" if sftp else "")
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    log = workdir / "sshd.log"
    proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stderr=log.open("wb"))
    try:
        for a in addresses:
            _wait_listening(a, port)
        hosts = [
            LoopbackHost(name, addr, port, workdir / "hosts" / name)
            for name, addr in zip(names, addresses, strict=True)
        ]
        yield hosts, key
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def write_inventory(path: Path, hosts: list[LoopbackHost], key: Path, **host_vars: str) -> Path:
    lines = ["[vbench_hosts]"]
    for h in hosts:
        lines.append(
            f"{h.name} ansible_host={h.address} ansible_port={h.port} ansible_user=root "
            f"ansible_ssh_private_key_file={key} vbench_prefix={h.prefix} "
            "ansible_python_interpreter=/usr/bin/python3"
        )
    lines.append("[vbench_hosts:vars]")
    lines.append(
        "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'"
    )
    lines += [f"{k}={v}" for k, v in host_vars.items()]
    path.write_text("\n".join(lines) + "\n")
    return path
