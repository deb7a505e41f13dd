#!/usr/bin/env python3
"""Summarize Google Benchmark JSON output of dsn_bench_cuda (or dsn_bench_cpu).

Reads one or more files written with --benchmark_out=FILE --benchmark_out_format=json, pairs
benchmarks named <family>/<implementation>/<network>/<layer>, and reports:

- for every family with a hand-written and a vendor implementation (cuDNN, cuBLAS), the ratio
  hand-written time / vendor time per layer and its median over the layers of the three
  networks (the "awkward" shapes are reported apart, not in the median);
- for every memory-bound benchmark (a "bytes" counter and no "flops" counter), its bandwidth as
  a percentage of the device-to-device copy bandwidth (the fastest memcpy_d2d benchmark).

A file cut short (the benchmark program killed by a timeout) is read up to its last complete
benchmark. Prints a text table; --json-out writes the summary as JSON (format in
bench/README.md). Python 3 standard library only.
"""

import argparse
import json
import math
import statistics
import sys

VENDORS = ("cudnn", "cublas")
HANDWRITTEN = "handwritten"
REFERENCE_NETWORK = "reference"
AWKWARD_NETWORK = "awkward"
TIME_SUFFIXES = ("/manual_time", "/real_time")
SECONDS_PER_UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def load_report(path):
    """Return (context, benchmarks, truncated) of one JSON file, tolerating a cut-off end."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        report = json.loads(text)
        return report.get("context", {}), report.get("benchmarks", []), False
    except json.JSONDecodeError:
        pass
    decoder = json.JSONDecoder()
    context = {}
    start = text.find('"context"')
    if start >= 0:
        try:
            context, _ = decoder.raw_decode(text, text.index("{", start))
        except (json.JSONDecodeError, ValueError):
            context = {}
    benchmarks = []
    start = text.find('"benchmarks"')
    if start >= 0:
        position = text.find("[", start) + 1
        while position > 0:
            while position < len(text) and text[position] in " \t\r\n,":
                position += 1
            try:
                entry, position = decoder.raw_decode(text, position)
            except json.JSONDecodeError:
                break
            benchmarks.append(entry)
    return context, benchmarks, True


def split_name(run_name):
    """Return (family, implementation, network, layer) or None for other names."""
    for suffix in TIME_SUFFIXES:
        if run_name.endswith(suffix):
            run_name = run_name[: -len(suffix)]
            break
    parts = run_name.split("/")
    if len(parts) < 4:
        return None
    return parts[0], parts[1], parts[2], "/".join(parts[3:])


def collect(benchmarks):
    """Group the successful runs by name and return ({key: run}, [failures])."""
    runs = {}
    medians = {}
    failures = []
    for entry in benchmarks:
        run_name = entry.get("run_name", entry.get("name", ""))
        key = split_name(run_name)
        if key is None:
            continue
        if entry.get("error_occurred"):
            failures.append({"name": run_name, "error": entry.get("error_message", "")})
            continue
        run_type = entry.get("run_type", "iteration")
        if run_type == "aggregate":
            if entry.get("aggregate_name") == "median":
                medians[key] = entry
            continue
        runs.setdefault(key, []).append(entry)
    result = {}
    for key, entries in runs.items():
        if key in medians:
            result[key] = medians[key]
        else:
            # Repetitions without aggregates: the run with the median time.
            ordered = sorted(entries, key=lambda e: e["real_time"])
            result[key] = ordered[len(ordered) // 2]
    for key, entry in medians.items():
        result.setdefault(key, entry)
    return result, failures


def seconds(entry):
    return entry["real_time"] * SECONDS_PER_UNIT.get(entry.get("time_unit", "ns"), 1e-9)


def describe(values):
    """Return the count, median, geometric mean, minimum and maximum of positive values."""
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "median": statistics.median(values),
        "geomean": math.exp(sum(math.log(v) for v in values) / len(values)),
        "min": min(values),
        "max": max(values),
    }


def vendor_ratios(runs):
    """Return hand-written time / vendor time per family, over the layers both ran."""
    families = {}
    for (family, implementation, network, layer), entry in runs.items():
        if implementation not in VENDORS:
            continue
        mine = runs.get((family, HANDWRITTEN, network, layer))
        if mine is None:
            continue
        summary = families.setdefault(family, {"vendor": implementation, "layers": []})
        summary["layers"].append({
            "network": network,
            "layer": layer,
            "handwritten_seconds": seconds(mine),
            "vendor_seconds": seconds(entry),
            "ratio": seconds(mine) / seconds(entry),
            "vendor_label": entry.get("label", ""),
        })
    for summary in families.values():
        layers = sorted(summary["layers"], key=lambda item: (item["network"], item["layer"]))
        summary["layers"] = layers
        real = [item["ratio"] for item in layers
                if item["network"] not in (AWKWARD_NETWORK, REFERENCE_NETWORK)]
        summary["networks"] = describe(real)
        by_network = {}
        for item in layers:
            by_network.setdefault(item["network"], []).append(item["ratio"])
        summary["by_network"] = {name: describe(values) for name, values in by_network.items()}
    return dict(sorted(families.items()))


def copy_bandwidth(runs):
    """Return (bytes per second, name) of the fastest device-to-device copy, or (None, None)."""
    best = (None, None)
    for (family, implementation, network, layer), entry in runs.items():
        if family != "memcpy_d2d" or "bytes" not in entry:
            continue
        if best[0] is None or entry["bytes"] > best[0]:
            best = (entry["bytes"], "/".join((family, implementation, network, layer)))
    return best


def memory_bound(runs, d2d):
    """Return the bandwidth of each benchmark with a bytes and no flops counter, by family."""
    families = {}
    for (family, implementation, network, layer), entry in sorted(runs.items()):
        if family == "memcpy_d2d" or "bytes" not in entry or "flops" in entry:
            continue
        item = {
            "implementation": implementation,
            "network": network,
            "layer": layer,
            "seconds": seconds(entry),
            "bytes_per_second": entry["bytes"],
        }
        if d2d:
            item["percent_of_d2d"] = 100.0 * entry["bytes"] / d2d
        families.setdefault((family, implementation), []).append(item)
    result = {}
    for (family, implementation), items in sorted(families.items()):
        percents = [item["percent_of_d2d"] for item in items if "percent_of_d2d" in item]
        result[f"{family}/{implementation}"] = {
            "bytes_per_second": describe([item["bytes_per_second"] for item in items]),
            "percent_of_d2d": describe(percents),
            "items": items,
        }
    return result


def compute_rates(runs):
    """Return the FLOP/s of the square reference GEMMs, the compute ceilings of this run."""
    result = {}
    for (family, implementation, network, layer), entry in runs.items():
        if network == REFERENCE_NETWORK and "flops" in entry:
            result[f"{family}/{implementation}/{layer}"] = entry["flops"]
    return result


def summarize(paths):
    context = {}
    benchmarks = []
    truncated = []
    for path in paths:
        file_context, file_benchmarks, cut = load_report(path)
        context = context or file_context
        benchmarks.extend(file_benchmarks)
        if cut:
            truncated.append(path)
    runs, failures = collect(benchmarks)
    d2d, d2d_name = copy_bandwidth(runs)
    return {
        "sources": list(paths),
        "truncated_sources": truncated,
        "context": context,
        "benchmark_count": len(runs),
        "failed_count": len(failures),
        "failed": failures,
        "d2d_bytes_per_second": d2d,
        "d2d_benchmark": d2d_name,
        "reference_flops_per_second": compute_rates(runs),
        "vendor_ratios": vendor_ratios(runs),
        "memory_bound": memory_bound(runs, d2d),
    }


def format_number(value, digits=3):
    return "-" if value is None else f"{value:.{digits}g}"


def print_text(summary, out):
    context = summary["context"]
    if "gpu" in context:
        print(f"GPU: {context['gpu']}, driver {context.get('cuda_driver', '?')}, "
              f"cuDNN {context.get('cudnn', '?')}, cuBLAS {context.get('cublas', '?')}", file=out)
    else:
        print(f"host: {context.get('host_name', '?')}, {context.get('num_cpus', '?')} CPUs "
              "(no GPU context in the input)", file=out)
    print(f"benchmarks: {summary['benchmark_count']} ran, {summary['failed_count']} failed"
          + (f", truncated files: {', '.join(summary['truncated_sources'])}"
             if summary["truncated_sources"] else ""), file=out)
    d2d = summary["d2d_bytes_per_second"]
    print(f"device-to-device copy: {format_number(d2d and d2d / 1e9, 4)} GB/s (read + write)",
          file=out)
    for name, rate in sorted(summary["reference_flops_per_second"].items()):
        print(f"{name}: {rate / 1e12:.2f} TFLOP/s", file=out)

    print("\nhand-written time / vendor time (median over the networks' layers; "
          "awkward shapes apart)", file=out)
    print(f"{'family':<18} {'vendor':<7} {'layers':>6} {'median':>7} {'geomean':>7} "
          f"{'min':>7} {'max':>7} {'awkward':>7}", file=out)
    for family, item in summary["vendor_ratios"].items():
        stats = item["networks"]
        awkward = item["by_network"].get(AWKWARD_NETWORK, {}).get("median")
        print(f"{family:<18} {item['vendor']:<7} {stats['count']:>6} "
              f"{format_number(stats.get('median')):>7} {format_number(stats.get('geomean')):>7} "
              f"{format_number(stats.get('min')):>7} {format_number(stats.get('max')):>7} "
              f"{format_number(awkward):>7}", file=out)

    print("\nmemory-bound kernels: median GB/s, and % of the device-to-device copy", file=out)
    print(f"{'family/implementation':<32} {'count':>5} {'GB/s':>7} {'median%':>7} {'min%':>7} "
          f"{'max%':>7}", file=out)
    for name, item in summary["memory_bound"].items():
        stats = item["percent_of_d2d"]
        rate = item["bytes_per_second"].get("median")
        gigabytes = "-" if rate is None else f"{rate / 1e9:.1f}"
        print(f"{name:<32} {len(item['items']):>5} {gigabytes:>7} "
              f"{format_number(stats.get('median')):>7} {format_number(stats.get('min')):>7} "
              f"{format_number(stats.get('max')):>7}", file=out)
    for failure in summary["failed"][:20]:
        print(f"failed: {failure['name']}: {failure['error']}", file=out)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", help="Google Benchmark JSON files")
    parser.add_argument("--json-out", help="write the summary as JSON to this file")
    args = parser.parse_args(argv)
    try:
        summary = summarize(args.inputs)
    except OSError as error:
        print(f"summarize.py: failed to read {error.filename}: {error.strerror}", file=sys.stderr)
        return 1
    print_text(summary, sys.stdout)
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=1)
            handle.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
