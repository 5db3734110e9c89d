"""Do the peer comparisons reproduce? One table over several occasions of the same side-by-side benchmark.

Each input is the JSON of one occasion: ``benchmarks/throughput.py --rounds N`` (jaxrl vs rejax) or
``benchmarks/offline.py --peer --rounds N`` (jaxrl vs d3rlpy), run at different times. For every comparison (algo
and run count) the table gives each occasion's per-round ratio range and the machine's load, and says whether the
occasions agree: their ranges share a value (``sidebyside.across_occasions``); only then is one ratio stated.
``--agree-over ppo=3,4,5`` judges the agreement of the occasions whose files are tagged ``ppo`` (``ppo_<date>.json``,
not ``ppo1core_...``) over occasions 3, 4 and 5 only (1-based): the ones that ran the current setting when an earlier
occasion ran another (the earlier ones stay in the table as history). Occasions run under another thread setting
(``taskset -c 0``: one usable core) form their own table.

    cd benchmarks && python occasions.py results/occasions/*.json --header results/occasions/README.md \
        --out results/peer_occasions
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import sidebyside


def comparisons(report: dict) -> dict[str, dict]:
    """``{label: summary}`` of one occasion's report, whichever benchmark wrote it."""
    out = {}
    for s in report.get("ratios", []):  # throughput.py
        out[f"{s['algo']} vs {s['libraries'][1]}, {s['runs']} run{'s' * (s['runs'] > 1)}"] = s
    for row in report.get("peer", []):  # offline.py --peer
        out[f"{row['algo']} vs d3rlpy (fit loop)"] = row["summary"]
        if "summary_update_only" in row:
            out[f"{row['algo']} vs d3rlpy (update only)"] = row["summary_update_only"]
    return out


def occasion_label(report: dict, path: Path) -> str:
    return str(report.get("date") or report.get("started") or path.stem)


def benchmark_of(report: dict) -> str:
    """The benchmark and its thread setting: occasions are compared only within one setting (the cores the
    process may use, ``taskset``, and d3rlpy's torch threads)."""
    cores = report.get("hardware", {}).get("usable_cores")
    setting = f", {cores} usable core{'s' * (cores != 1)}" if cores else ""
    if "peer" in report:
        threads = report.get("args", {}).get("peer_threads")
        setting += f", d3rlpy {threads} torch thread{'s' * (threads != 1)}" if threads else ""
        return f"offline vs d3rlpy (benchmarks/offline.py --peer){setting}"
    return f"throughput vs rejax (benchmarks/throughput.py){setting}"


def one_table(reports: list[tuple[Path, dict]], agree_over: list[int] | None = None) -> tuple[list[str], dict]:
    """The table of one benchmark's occasions (columns) and comparisons (rows), and each row's verdict over the
    occasions ``agree_over`` (0-based; default all)."""
    per = [comparisons(r) for _, r in reports]
    judged = list(range(len(per))) if agree_over is None else agree_over
    over = "" if agree_over is None else f" ({', '.join(str(i + 1) for i in judged)})"
    names = list(dict.fromkeys(k for c in per for k in c))
    lines = [
        "| comparison | "
        + " | ".join(f"occasion {i + 1}: ratio (rounds), load" for i in range(len(reports)))
        + f" | occasions{over} agree? | ratio over their rounds |",
        "|---|" + "---|" * len(reports) + "---|---:|",
    ]
    verdicts = {}
    for name in names:
        verdict = sidebyside.across_occasions([per[i][name] for i in judged if name in per[i]])
        verdicts[name] = verdict
        cells = []
        for c in per:
            s = c.get(name)
            if s is None or not s.get("ratios"):
                cells.append("-")
                continue
            lo, hi = s["ratio_range"]
            cells.append(f"{statistics.median(s['ratios']):.2f}x ({lo:.2f}-{hi:.2f}), {sidebyside.load_text(s)}")
        if verdict["agree"]:
            lo, hi = verdict["common"]
            agree, ratio = f"yes (common {lo:.2f}-{hi:.2f})", f"{verdict['ratio']:.2f}x"
        else:
            lo, hi = verdict["all_range"] or (float("nan"), float("nan"))
            agree, ratio = "no", f"not stated ({lo:.2f}-{hi:.2f})"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {agree} | {ratio} |")
    return lines, verdicts


def table(paths: list[Path], agree_over: dict[str, list[int]] | None = None) -> tuple[str, dict]:
    """One table per benchmark over its occasions (in the order given), and the verdicts as data; ``agree_over``:
    ``{file-name tag: occasions (1-based) whose agreement is judged}``, where an earlier occasion of that
    benchmark ran another setting."""
    groups: dict[str, list[tuple[Path, dict]]] = {}
    for p in paths:
        report = json.loads(p.read_text())
        groups.setdefault(benchmark_of(report), []).append((p, report))
    text, data = [], {}
    for bench, reports in groups.items():
        occasions = "; ".join(f"{i + 1}. {occasion_label(r, p)} (`{p.name}`)" for i, (p, r) in enumerate(reports))
        judged = None
        chosen = [ks for prefix, ks in (agree_over or {}).items() if reports[0][0].name.split("_")[0] == prefix]
        if chosen:
            bad = [k for k in chosen[0] if not 1 <= k <= len(reports)]
            if bad:
                raise SystemExit(f"--agree-over {bad}: {bench} has occasions 1..{len(reports)}")
            judged = [k - 1 for k in chosen[0]]
        lines, verdicts = one_table(reports, judged)
        text += [f"## {bench}", "", f"Occasions: {occasions}.", "", *lines, ""]
        data[bench] = {"occasions": [str(p) for p, _ in reports], "judged": judged, "verdicts": verdicts}
    return "\n".join(text), data


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="+", type=Path, help="one JSON per occasion")
    ap.add_argument("--out", type=Path, help="output path without extension (.md table and .json verdicts)")
    ap.add_argument("--header", type=Path, help="markdown put above the tables (commands, machine, findings)")
    ap.add_argument(
        "--agree-over",
        action="append",
        default=[],
        metavar="PREFIX=K,L,...",
        help="judge the agreement of the occasions whose files are tagged PREFIX (PREFIX_<date>.json) over occasions K, L, ... (1-based): "
        "those that ran the current setting (repeatable)",
    )
    a = ap.parse_args(argv)
    agree_over = {}
    for item in a.agree_over:
        prefix, _, ks = item.partition("=")
        if not ks:
            ap.error(f"--agree-over {item!r}: expected PREFIX=K,L,... (e.g. ppo=3,4,5)")
        agree_over[prefix] = [int(k) for k in ks.split(",")]
    text, data = table(a.inputs, agree_over)
    if a.header:
        text = a.header.read_text().rstrip() + "\n\n" + text
    print(text)
    if a.out:
        a.out.with_suffix(".md").write_text(text)
        a.out.with_suffix(".json").write_text(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
