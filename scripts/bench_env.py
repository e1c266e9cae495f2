"""What the benchmark scripts print about the machine beside their figures (scripts/bench_table.py,
scripts/bench_daemon.py): the CPU model and its SIMD flags, the load average."""
import os
import re


def cpu_description():
    """'CPU: <model name>; flags: <the SIMD-related flags>' from /proc/cpuinfo."""
    model_name, flags = "unknown", ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model_name == "unknown":
                    model_name = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = " ".join(x for x in line.split(":", 1)[1].split()
                                     if re.match(r"(avx|fma|f16c|amx|bmi|sse4|vaes|vpclmul|gfni)", x))
                    break
    except OSError:
        pass
    return f"CPU: {model_name}; flags: {flags}"


def loads(values):
    """The three load averages, as printed: '0.52 1.10 2.03'."""
    return " ".join(f"{x:.2f}" for x in values)


def load_line(before, after):
    """'load average (1/5/15 min) before ..., after ...; N CPUs'."""
    return (f"load average (1/5/15 min) before {loads(before)}, after {loads(after)}; "
            f"{os.cpu_count()} CPUs")
