"""Checks an installed portable wheel (python/build_wheel.py): every instruction-set level this
CPU can run imports, says which level it is, and fits; the level chosen by default is the best
one the CPU has; the FMA levels (v3, v4) fit the same bits. Run by .ci/run in a fresh virtualenv with the wheel installed:

    python python/check_wheel.py
"""

import os
import subprocess
import sys

EXPECTED = {"base": "sse2", "v3": "avx2+fma", "v4": "avx512f+fma"}

SNIPPET = """
import hashlib, numpy as np, flock
X = np.linspace(-3, 3, 200)[:, None]
model = flock.Regressor(epochs=300).fit(X, np.sin(X[:, 0]))
prediction = model.predict(X)
rmse = float(np.sqrt(np.mean((prediction - np.sin(X[:, 0])) ** 2)))
assert rmse < 0.1, rmse
print(flock.simd_level(), flock.__file__, hashlib.sha256(prediction.tobytes()).hexdigest())
"""


def level_output(level):
    env = dict(os.environ)
    if level is not None:
        env["FLOCK_SIMD"] = level
    done = subprocess.run([sys.executable, "-c", SNIPPET], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"FLOCK_SIMD={level}: failed\n{done.stderr}")
    return done.stdout.split()


def main():
    flags = open("/proc/cpuinfo").read().split()
    runnable = ["base"]
    if {"avx2", "fma", "bmi2", "movbe"} <= set(flags):
        runnable.append("v3")
    if "avx512f" in flags and "avx512bw" in flags and "avx512vl" in flags:
        runnable.append("v4")
    fma_bits = {}
    for level in runnable:
        simd, where, bits = level_output(level)
        if level != "base":
            fma_bits[level] = bits
        if "site-packages" not in where:
            sys.exit(f"imported flock from {where}, not the installed wheel")
        if simd != EXPECTED[level]:
            sys.exit(f"FLOCK_SIMD={level} loaded a module built for {simd}, not {EXPECTED[level]}")
        print(f"level {level}: {simd}, fits (predictions {bits[:16]})")
    if len(set(fma_bits.values())) > 1:
        sys.exit(f"the FMA levels fit different bits: {fma_bits}")
    if len(fma_bits) > 1:
        print("v3 and v4 fit the same bits")
    simd, _, _ = level_output(None)
    if simd != EXPECTED[runnable[-1]]:
        sys.exit(f"the default import chose {simd}; this CPU runs {EXPECTED[runnable[-1]]}")
    print(f"default: {simd} (the best this CPU runs)")


if __name__ == "__main__":
    main()
