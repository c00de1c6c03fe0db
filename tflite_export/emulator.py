"""An emulated 64-bit Raspberry Pi: qemu user-mode and a small arm64 sysroot.

Raspberry Pi OS is Debian bookworm arm64. The sysroot holds nine bookworm
arm64 packages (enough for `python3.11`) and the aarch64 wheels of numpy and
ai-edge-litert. qemu runs `SYSROOT/usr/bin/python3.11` with `-L`, so no VM,
chroot or root is needed at run time.

Facts this relies on (from a prototype, see issue 4):
- qemu 7.2 passes the host's x86 `/proc/cpuinfo` through, and ai-edge-litert
  segfaults parsing it. `-L` substitutes any absolute path that exists under
  the prefix, so each emulated CPU gets its own prefix holding an ARM
  `proc/cpuinfo`, generated from that CPU's real MIDR_EL1 and AT_HWCAP as
  read under qemu (claiming features the CPU lacks makes XNNPACK execute
  illegal instructions).
- `-cpu cortex-a72` is a Pi 4, `-cpu cortex-a76` a Pi 5. Never `-cpu max`:
  qemu 7.2 emulates the SVE/SME kernels XNNPACK then picks wrongly.
- Emulated latency is 100x to 400x the host's and says nothing about a real
  Pi's speed: it is labelled as emulated wherever it is printed.
"""

import fcntl
import glob
import json
import os
import shutil
import sys
import zipfile

from tflite_export.errors import TargetError
from tflite_export.process import run_command
from tflite_export.process import run_json

PACKAGES = ("libc6", "zlib1g", "libexpat1", "libffi8", "libgcc-s1",
            "libstdc++6", "libpython3.11-minimal", "libpython3.11-stdlib",
            "python3.11-minimal")
WHEELS = ("numpy", "ai-edge-litert==2.3.0")
QEMU = "qemu-aarch64-static"
EMULATED_CPUS = ("cortex-a72", "cortex-a76")
HWCAP_NAMES = (
    "fp", "asimd", "evtstrm", "aes", "pmull", "sha1", "sha2", "crc32",
    "atomics", "fphp", "asimdhp", "cpuid", "asimdrdm", "jscvt", "fcma",
    "lrcpc", "dcpop", "sha3", "sm3", "sm4", "asimddp", "sha512", "sve",
    "asimdfhm", "dit", "uscat", "ilrcpc", "flagm", "ssbs", "sb", "paca",
    "pacg")

# Runs under qemu: reads AT_HWCAP with getauxval and MIDR_EL1 with an `mrs`
# instruction placed in executable memory.
_PROBE = r"""
import ctypes, json, mmap
libc = ctypes.CDLL("libc.so.6")
libc.getauxval.restype = ctypes.c_ulong
hwcap = libc.getauxval(16)
code = bytes.fromhex("000038d5c0035fd6")  # mrs x0, midr_el1; ret
buf = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE
                | mmap.PROT_EXEC)
buf.write(code)
address = ctypes.addressof(ctypes.c_char.from_buffer(buf))
midr = ctypes.CFUNCTYPE(ctypes.c_uint64)(address)()
print(json.dumps({"hwcap": hwcap, "midr": midr}))
"""


def cache_dir():
    """Where the sysroot lives: `$XDG_CACHE_HOME/kcompress` or ~/.cache."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "kcompress", "rpi-emulator")


def qemu_path():
    path = shutil.which(QEMU)
    if path is None:
        raise TargetError(
            f"qemu is not installed ({QEMU} not found); install it with "
            "`sudo apt-get install qemu-user-static`")
    return path


def _apt_options(work):
    return ["-o", "APT::Architecture=arm64", "-o", "APT::Architectures=arm64",
            "-o", f"Dir::State::Lists={work}/lists",
            # A private cache too, so the host's package cache is untouched.
            "-o", f"Dir::Cache={work}/cache"]


def build(force=False):
    """Builds (or reuses) the arm64 sysroot; returns its path.

    Two processes building at once (two test workers, two shells) take
    turns on a lock file, so the second reuses what the first built instead
    of deleting it half-made.
    """
    qemu_path()
    root = cache_dir()
    sysroot = os.path.join(root, "sysroot")
    marker = os.path.join(sysroot, ".complete")
    if os.path.exists(marker) and not force:
        return sysroot
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, ".build-lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(marker) and not force:
            return sysroot
        return _build(root, sysroot, marker)


def _build(root, sysroot, marker):
    work = os.path.join(root, "work")
    shutil.rmtree(sysroot, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    for sub in ("lists/partial", "cache/archives/partial", "debs", "wheels"):
        os.makedirs(os.path.join(work, sub), exist_ok=True)
    from keras.utils import Progbar  # Keras loads slowly; only to build.

    bar = Progbar(5 + len(PACKAGES), unit_name="step")
    run_command(["apt-get"] + _apt_options(work) + ["update"],
                "apt-get update (arm64 lists)")
    bar.add(1)
    for package in PACKAGES:
        run_command(["apt-get"] + _apt_options(work)
                    + ["download", f"{package}:arm64"],
                    f"apt-get download {package}:arm64",
                    cwd=os.path.join(work, "debs"))
        bar.add(1)
    for deb in sorted(glob.glob(os.path.join(work, "debs", "*.deb"))):
        run_command(["dpkg", "-x", deb, sysroot], f"dpkg -x {deb}")
    bar.add(1)
    platforms = []
    for minor in range(17, 37):
        platforms += ["--platform", f"manylinux_2_{minor}_aarch64"]
    run_command([sys.executable, "-m", "pip", "download", "--quiet",
                 "--no-deps", "--only-binary=:all:", "--python-version",
                 "3.11", "--implementation", "cp", "--abi", "cp311",
                 *platforms, "-d", os.path.join(work, "wheels"), *WHEELS],
                "pip download of the aarch64 wheels")
    bar.add(1)
    site = os.path.join(sysroot, "usr", "lib", "python3", "dist-packages")
    os.makedirs(site, exist_ok=True)
    for wheel in glob.glob(os.path.join(work, "wheels", "*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)
    bar.add(1)
    shutil.rmtree(work, ignore_errors=True)
    with open(marker, "w") as f:
        f.write("ok\n")
    bar.add(1)
    return sysroot


def _python(sysroot):
    return os.path.join(sysroot, "usr", "bin", "python3.11")


def probe(cpu, sysroot):
    """`{"hwcap": int, "midr": int}` of the emulated `cpu`, read under qemu."""
    out = run_command([qemu_path(), "-cpu", cpu, "-L", sysroot,
                       _python(sysroot), "-c", _PROBE],
                      f"probing emulated {cpu}")
    return json.loads(out.strip().splitlines()[-1])


def cpuinfo_text(midr, hwcap, cores=4):
    """An arm64 `/proc/cpuinfo` for the given MIDR_EL1 and AT_HWCAP."""
    features = " ".join(name for bit, name in enumerate(HWCAP_NAMES)
                        if hwcap >> bit & 1)
    block = (f"BogoMIPS\t: 108.00\nFeatures\t: {features}\n"
             f"CPU implementer\t: 0x{midr >> 24 & 0xff:02x}\n"
             f"CPU architecture: 8\n"
             f"CPU variant\t: 0x{midr >> 20 & 0xf:x}\n"
             f"CPU part\t: 0x{midr >> 4 & 0xfff:03x}\n"
             f"CPU revision\t: {midr & 0xf}\n")
    return "".join(f"processor\t: {i}\n{block}\n" for i in range(cores))


def prefix_for(cpu, sysroot):
    """A `-L` prefix for `cpu`: the sysroot plus that CPU's proc/cpuinfo."""
    prefix = os.path.join(os.path.dirname(sysroot), f"cpu-{cpu}")
    info = os.path.join(prefix, "proc", "cpuinfo")
    if not os.path.exists(info):
        os.makedirs(os.path.dirname(info), exist_ok=True)
        for name in os.listdir(sysroot):
            link = os.path.join(prefix, name)
            if not os.path.lexists(link):
                os.symlink(os.path.join(sysroot, name), link)
        values = probe(cpu, sysroot)
        with open(info, "w") as f:
            f.write(cpuinfo_text(values["midr"], values["hwcap"]))
    return prefix


def run_script(cpu, script, args):
    """Runs a Python script with the emulated Pi's Python; returns its JSON."""
    if cpu == "max":
        raise TargetError(
            "-cpu max is refused: qemu 7.2 emulates SVE/SME wrongly")
    sysroot = build()
    prefix = prefix_for(cpu, sysroot)
    return run_json([qemu_path(), "-cpu", cpu, "-L", prefix,
                     _python(sysroot), script] + list(args),
                    f"emulated {cpu} bench")
