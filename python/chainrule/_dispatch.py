"""Import the fastest compiled core this CPU can run.

The extension is built from the same sources once per x86-64 level: ``_core`` (baseline x86-64,
always present), ``_core_v3`` (x86-64-v3: AVX2, FMA, BMI2...) and ``_core_v4``
(x86-64-v4: AVX-512). The CPU's features come from numpy (which also checks that the operating
system saves the wide registers) or, failing that, /proc/cpuinfo.

AVX-512 is not always the faster choice: Zen 4 (AMD family 19h) executes 512-bit FMAs as two
256-bit halves, and there Eigen's AVX-512 GEMM was measured slower than its AVX2 one (about 86
against 100 GFLOP/s), so on that family v4 is skipped unless asked for. On the Intel Xeon of
docs/performance.md, v4 made Eigen's GEMM about 1.7 times as fast as v3.

``CHAINRULE_ISA=baseline|v2|v3|v4`` forces a level (for tests and comparisons); asking for one
that is not built or that the CPU lacks falls back to the best available one below it.
"""

import importlib
import os
import platform

_LEVELS = ("v4", "v3", "v2")  # best first
_NEEDS = {
    # numpy's names for the features each level adds (the levels are cumulative)
    "v2": ("SSE3", "SSSE3", "SSE41", "POPCNT", "SSE42"),
    "v3": ("AVX", "AVX2", "FMA3", "F16C"),
    "v4": ("AVX512F", "AVX512CD", "AVX512BW", "AVX512DQ", "AVX512VL"),
}
_CPUINFO_NAMES = {
    "SSE3": "pni", "SSSE3": "ssse3", "SSE41": "sse4_1", "POPCNT": "popcnt", "SSE42": "sse4_2",
    "AVX": "avx", "AVX2": "avx2", "FMA3": "fma", "F16C": "f16c",
    "AVX512F": "avx512f", "AVX512CD": "avx512cd", "AVX512BW": "avx512bw",
    "AVX512DQ": "avx512dq", "AVX512VL": "avx512vl",
}


def _cpu_features():
    """The set of numpy-style feature names this CPU (and OS) supports."""
    for mod in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            feats = importlib.import_module(mod).__cpu_features__
            return {name for name, on in feats.items() if on}
        except (ImportError, AttributeError):
            continue
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return {k for k, v in _CPUINFO_NAMES.items() if v in flags}
    except OSError:
        pass
    return set()


def _cpu_vendor_family():
    """(vendor_id, cpu family) from /proc/cpuinfo, or ("", -1) where it cannot be read."""
    vendor, family = "", -1
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "vendor_id":
                    vendor = value.strip()
                elif key == "cpu family":
                    family = int(value)
                if vendor and family >= 0:
                    break
    except (OSError, ValueError):
        pass
    return vendor, family


def prefers_avx2_over_avx512(vendor_family=None):
    """True on CPUs whose AVX-512 GEMM is slower than their AVX2 one (Zen 4: AMD family 0x19)."""
    vendor, family = vendor_family if vendor_family is not None else _cpu_vendor_family()
    return vendor == "AuthenticAMD" and family == 0x19


def supported_levels():
    """x86-64 levels this CPU runs, best first (empty off x86-64)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return []
    feats = _cpu_features()
    levels, ok = [], True
    for level in ("v2", "v3", "v4"):
        ok = ok and all(f in feats for f in _NEEDS[level])
        if ok:
            levels.append(level)
    return levels[::-1]


def load_core():
    """The best importable core module; its ``ISA`` attribute says which one it is."""
    forced = os.environ.get("CHAINRULE_ISA", "").strip().lower().removeprefix("x86-64-")
    if forced and forced not in ("baseline", *_LEVELS):
        raise ImportError(f"CHAINRULE_ISA={forced!r}: expected baseline, v2, v3 or v4")
    candidates = supported_levels()
    if not forced and prefers_avx2_over_avx512():
        candidates = [lv for lv in candidates if lv != "v4"]
    if forced:
        candidates = [] if forced == "baseline" else \
            [lv for lv in candidates if _LEVELS.index(lv) >= _LEVELS.index(forced)]
    for level in candidates:
        try:
            return importlib.import_module(f"chainrule._core_{level}")
        except ImportError:
            continue
    return importlib.import_module("chainrule._core")
