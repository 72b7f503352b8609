"""Builds a portable wheel of flock: the native module for three x86-64 instruction-set levels,
chosen at import from the CPU's features (`flock/_native.py`).

`wide` picks its instructions when it is compiled, so one build is either fast on new CPUs and
crashes on old ones, or runs everywhere at a quarter of the speed. This wheel holds

- `flock/_flock*.so`    — the x86-64 baseline (SSE2), built by maturin: runs on any x86-64;
- `flock/_flock_v3*.so` — x86-64-v3 (AVX2 + FMA), loaded where the CPU has those;
- `flock/_flock_v4*.so` — x86-64-v4 (AVX-512), loaded where the CPU has that.

Usage (run by `cargo xtask wheel`, with a Python that has maturin):

    python python/build_wheel.py [--out DIR]

prints the wheel's path. Each level builds in its own target folder under `target/wheel/`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LEVELS = [("v3", "x86-64-v3"), ("v4", "x86-64-v4")]


def run(cmd: list[str], env: dict) -> None:
    print("build_wheel:", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)


def level_env(cpu: str, target: Path) -> dict:
    env = dict(os.environ)
    env["RUSTFLAGS"] = f"-C target-cpu={cpu}"
    env["CARGO_TARGET_DIR"] = str(target)
    env["PYO3_PYTHON"] = sys.executable
    return env


def host_triple() -> str:
    """The host's target triple (`rustc -vV`)."""
    info = subprocess.run(["rustc", "-vV"], check=True, capture_output=True, text=True).stdout
    return next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("host:"))


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "target" / "portable-wheel"))
    args = parser.parse_args()
    build = ROOT / "target" / "wheel"
    build.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)

    # The other levels: the same crate with the module renamed (a cargo feature), built as an
    # extension module (not linked to libpython). `--target` keeps RUSTFLAGS off the build
    # scripts and proc macros, which run on this machine: a CPU without AVX-512 cannot run a
    # build script compiled for x86-64-v4. They build at the same time as the baseline, each in
    # its own target folder: a release build ends in long single-threaded steps (one codegen
    # unit, thin LTO) that the others fill (2-core Zen 3: 416 s one after another, 343 s at once).
    triple = host_triple()
    levels = []
    for level, cpu in LEVELS:
        env = level_env(cpu, build / level)
        env["PYO3_BUILD_EXTENSION_MODULE"] = "1"
        cmd = ["cargo", "build", "--release", "-p", "flock-python", "--target", triple,
               "--features", f"module-{level}"]
        print("build_wheel:", " ".join(cmd), file=sys.stderr)
        log = open(build / f"{level}.log", "w+")
        levels.append((level, cmd, log, subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)))

    # The baseline module, in the wheel maturin makes (metadata, Python files, stubs).
    base_dir = build / "base-dist"
    shutil.rmtree(base_dir, ignore_errors=True)
    try:
        run(
            [sys.executable, "-m", "maturin", "build", "--release", "-m", "python/Cargo.toml",
             "-o", str(base_dir)],
            level_env("x86-64", build / "base"),
        )
    finally:
        failed = []
        for level, cmd, log, process in levels:
            if process.wait() != 0:
                log.seek(0)
                sys.stderr.write(log.read())
                failed.append((level, cmd))
            log.close()
    if failed:
        raise SystemExit(f"build_wheel: the {failed[0][0]} build failed: {' '.join(failed[0][1])}")
    (base_wheel,) = base_dir.glob("*.whl")
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    extra: dict[str, bytes] = {}
    for level, _, _, _ in levels:
        built = build / level / triple / "release" / "lib_flock.so"
        extra[f"flock/_flock_{level}{suffix}"] = built.read_bytes()

    # Add them to maturin's wheel and rewrite its RECORD.
    target = out / base_wheel.name
    with zipfile.ZipFile(base_wheel) as src, zipfile.ZipFile(
        target, "w", compression=zipfile.ZIP_DEFLATED
    ) as dst:
        record_name = next(n for n in src.namelist() if n.endswith(".dist-info/RECORD"))
        lines = []
        for item in src.infolist():
            if item.filename == record_name:
                continue
            data = src.read(item.filename)
            dst.writestr(item, data)
            lines.append(record_line(item.filename, data))
        for name, data in extra.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = 0o755 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(info, data)
            lines.append(record_line(name, data))
        lines.append(f"{record_name},,")
        dst.writestr(record_name, "\n".join(lines) + "\n")
    print(target)


if __name__ == "__main__":
    main()
