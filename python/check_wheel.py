"""Checks an installed portable wheel (python/build_wheel.py): every instruction-set level this
CPU can run imports, says which level it is, and fits; the level chosen by default is the best
one the CPU has. Run by .ci/run in a fresh virtualenv with the wheel installed:

    python python/check_wheel.py
"""

import os
import subprocess
import sys

EXPECTED = {"base": "sse2", "v3": "avx2+fma", "v4": "avx512f+fma"}

SNIPPET = """
import numpy as np, flock
X = np.linspace(-3, 3, 200)[:, None]
model = flock.Regressor(epochs=300).fit(X, np.sin(X[:, 0]))
rmse = float(np.sqrt(np.mean((model.predict(X) - np.sin(X[:, 0])) ** 2)))
assert rmse < 0.1, rmse
print(flock.simd_level(), flock.__file__)
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
    for level in runnable:
        simd, where = level_output(level)
        if "site-packages" not in where:
            sys.exit(f"imported flock from {where}, not the installed wheel")
        if simd != EXPECTED[level]:
            sys.exit(f"FLOCK_SIMD={level} loaded a module built for {simd}, not {EXPECTED[level]}")
        print(f"level {level}: {simd}, fits")
    simd, _ = level_output(None)
    if simd != EXPECTED[runnable[-1]]:
        sys.exit(f"the default import chose {simd}; this CPU runs {EXPECTED[runnable[-1]]}")
    print(f"default: {simd} (the best this CPU runs)")


if __name__ == "__main__":
    main()
