"""The ssh target end to end, against an sshd the test starts on loopback.

The server's Python is the emulated arm64 Python (qemu user-mode with the
Raspberry Pi sysroot), so the run is what a real Pi over ssh would do. It is
passed with --remote_python, since a login shell's profile may put another
python3 first on the PATH.
"""

import getpass
import json
import os
import shutil
import socket
import subprocess
import time

import pytest

from tests.tflite_export.test_cli import cli
from tests.tflite_export.test_cli import files  # noqa: F401 (fixture)

SSHD = "/usr/sbin/sshd"

pytestmark = pytest.mark.skipif(
    not os.path.exists(SSHD) or shutil.which("qemu-aarch64-static") is None
    or shutil.which("ssh-keygen") is None,
    reason="needs openssh-server and qemu-user-static (make test installs "
           "them as root)")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ssh_server(tmp_path_factory):
    from tflite_export import emulator

    root = tmp_path_factory.mktemp("sshd")
    sysroot = emulator.build()
    prefix = emulator.prefix_for("cortex-a72", sysroot)
    bin_dir = root / "bin"
    bin_dir.mkdir()
    python3 = bin_dir / "python3"
    python3.write_text(
        "#!/bin/sh\nexec qemu-aarch64-static -cpu cortex-a72 "
        f"-L {prefix} {sysroot}/usr/bin/python3.11 \"$@\"\n")
    python3.chmod(0o755)
    for name in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        str(root / name)], check=True)
    (root / "authorized_keys").write_text(
        (root / "user_key.pub").read_text())
    port = _free_port()
    (root / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\n"
        f"HostKey {root / 'host_key'}\nPidFile {root / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n"
        f"SetEnv PATH={bin_dir}:/usr/bin:/bin\n"
        "Subsystem sftp /usr/lib/openssh/sftp-server\n")
    os.makedirs("/run/sshd", exist_ok=True)
    server = subprocess.Popen([SSHD, "-D", "-e", "-f",
                               str(root / "sshd_config")],
                              stderr=subprocess.PIPE)
    for _ in range(50):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    yield {"port": port, "key": str(root / "user_key"),
           "python": str(python3),
           "known_hosts": str(root / "known_hosts")}
    server.terminate()
    server.wait(timeout=10)


def test_bench_over_ssh_on_the_emulated_board(files, ssh_server):  # noqa: F811
    target = f"ssh://{getpass.getuser()}@127.0.0.1:{ssh_server['port']}"
    done = cli("bench", str(files / "qat.tflite"), f"--target={target}",
               f"--ssh_identity={ssh_server['key']}", "--runs=5",
               f"--remote_python={ssh_server['python']}",
               "--warmup=1", f"--data={files / 'test.npz'}",
               env={"TFLITE_EXPORT_SSH_KNOWN_HOSTS":
                    ssh_server["known_hosts"]})
    assert done.returncode == 0, done.stderr[-3000:]
    name = [p for p in os.listdir(files)
            if p.startswith("qat.bench.ssh")][0]
    result = json.loads((files / name).read_text())
    assert result["target"] == target
    assert result["runtime"] == "ai_edge_litert"
    assert result["bit_identical_to_host"] is True
    assert result["median_ms"] > 0
