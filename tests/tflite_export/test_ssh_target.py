"""The ssh target end to end, against an sshd the test starts on loopback.

The server's Python is the emulated arm64 Python (qemu user-mode with the
Raspberry Pi sysroot), so the run is what a real Pi over ssh would do. It is
passed with --remote_python, since a login shell's profile may put another
python3 first on the PATH. The interrupt tests use the host's Python on the
"board" instead, to be quick; what they check is the connection's end.

The board's host key is put in a known_hosts file first, as a user does
before trusting a board; the default refuses unknown keys.
"""

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.tflite_export.helpers import assert_bad_input
from tests.tflite_export.helpers import cli
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
    remote_tmp = root / "remote_tmp"
    remote_tmp.mkdir()
    host_key = (root / "host_key.pub").read_text().split()[:2]
    (root / "known_hosts").write_text(
        f"[127.0.0.1]:{port} {' '.join(host_key)}\n")
    (root / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\n"
        f"HostKey {root / 'host_key'}\nPidFile {root / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n"
        f"SetEnv PATH={bin_dir}:/usr/bin:/bin TMPDIR={remote_tmp}\n"
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
           "python": str(python3), "root": root, "remote_tmp": remote_tmp,
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


def _target(server):
    return f"ssh://{getpass.getuser()}@127.0.0.1:{server['port']}"


def test_unknown_host_key_is_refused_unless_asked(tiny, ssh_server,
                                                  tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("")
    args = ("bench", str(tiny / "tiny.tflite"),
            f"--target={_target(ssh_server)}",
            f"--ssh_identity={ssh_server['key']}", "--runs=1",
            f"--remote_python={sys.executable}")
    env = {"TFLITE_EXPORT_SSH_KNOWN_HOSTS": str(known)}
    assert_bad_input(cli(*args, env=env), "is not in known_hosts, or it "
                     "changed")
    assert known.read_text() == ""
    done = cli(*args, "--ssh_accept_new_host_key", env=env)
    assert done.returncode == 0, done.stderr
    key = (ssh_server["root"] / "host_key.pub").read_text().split()[1]
    assert key in known.read_text()  # recorded on first contact


def test_changed_host_key_is_named(tiny, ssh_server, tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    str(tmp_path / "other")], check=True)
    other = (tmp_path / "other.pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{ssh_server['port']} {' '.join(other)}\n")
    done = cli("bench", str(tiny / "tiny.tflite"),
               f"--target={_target(ssh_server)}",
               f"--ssh_identity={ssh_server['key']}", "--runs=1",
               "--ssh_accept_new_host_key",  # does not cover a changed key
               env={"TFLITE_EXPORT_SSH_KNOWN_HOSTS": str(known)})
    assert_bad_input(done, "is not in known_hosts, or it changed")


def _pids(pattern, cwd_under=None):
    """Processes whose command line matches `pattern`; with `cwd_under`,
    only those working in that directory tree. Another test worker may run
    a bench of its own (the emulated Pi's runs `bench_script.py
    model.tflite` too): only this server's remote directory is ours."""
    done = subprocess.run(["pgrep", "-f", pattern], capture_output=True,
                          text=True)
    pids = done.stdout.split()
    if cwd_under is None:
        return pids
    root = os.path.realpath(cwd_under) + os.sep

    def works_under(pid):
        try:
            return os.readlink(f"/proc/{pid}/cwd").startswith(root)
        except OSError:  # gone, or not ours to read
            return False

    return [pid for pid in pids if works_under(pid)]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_ssh_bench_leaves_nothing_behind(slow_tflite, ssh_server,
                                                     sig):
    remote_bench = "bench_script.py model.tflite"
    ours = ssh_server["remote_tmp"]
    client = f"ssh .*-p {ssh_server['port']}"
    process = subprocess.Popen(
        [sys.executable, "-m", "tflite_export", "bench", str(slow_tflite),
         f"--target={_target(ssh_server)}", "--runs=100000", "--noxnnpack",
         f"--ssh_identity={ssh_server['key']}",
         f"--remote_python={sys.executable}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ,
             "TFLITE_EXPORT_SSH_KNOWN_HOSTS": ssh_server["known_hosts"]})
    try:
        deadline = time.monotonic() + 60
        while not _pids(remote_bench, ours) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _pids(remote_bench, ours), "the remote bench never started"
        assert os.listdir(ssh_server["remote_tmp"])
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 2, stderr
    assert stderr.startswith("tflite_export: error: interrupted")
    deadline = time.monotonic() + 10
    while (_pids(remote_bench, ours) or _pids(client)) and \
            time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _pids(remote_bench, ours), "the remote bench is still running"
    assert not _pids(client), "an ssh client is still running"
    assert os.listdir(ssh_server["remote_tmp"]) == []
