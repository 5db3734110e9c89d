"""Do the peer comparisons reproduce? One table over several occasions of the same side-by-side benchmark.

Each input is the JSON of one occasion: ``benchmarks/throughput.py --rounds N`` (jaxrl vs rejax) or
``benchmarks/offline.py --peer --rounds N`` (jaxrl vs d3rlpy), run at different times. For every comparison (algo
and run count) the table gives each occasion's per-round ratio range and the machine's load, and says whether the
occasions agree: their ranges share a value (``sidebyside.across_occasions``); only then is one ratio stated.

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
    return (
        "offline vs d3rlpy (benchmarks/offline.py --peer)"
        if "peer" in report
        else "throughput vs rejax (benchmarks/throughput.py)"
    )


def one_table(reports: list[tuple[Path, dict]]) -> tuple[list[str], dict]:
    """The table of one benchmark's occasions (columns) and comparisons (rows), and each row's verdict."""
    per = [comparisons(r) for _, r in reports]
    names = list(dict.fromkeys(k for c in per for k in c))
    lines = [
        "| comparison | "
        + " | ".join(f"occasion {i + 1}: ratio (rounds), load" for i in range(len(reports)))
        + " | occasions agree? | ratio over all rounds |",
        "|---|" + "---|" * len(reports) + "---|---:|",
    ]
    verdicts = {}
    for name in names:
        verdict = sidebyside.across_occasions([c[name] for c in per if name in c])
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


def table(paths: list[Path]) -> tuple[str, dict]:
    """One table per benchmark over its occasions (in the order given), and the verdicts as data."""
    groups: dict[str, list[tuple[Path, dict]]] = {}
    for p in paths:
        report = json.loads(p.read_text())
        groups.setdefault(benchmark_of(report), []).append((p, report))
    text, data = [], {}
    for bench, reports in groups.items():
        occasions = "; ".join(f"{i + 1}. {occasion_label(r, p)} (`{p.name}`)" for i, (p, r) in enumerate(reports))
        lines, verdicts = one_table(reports)
        text += [f"## {bench}", "", f"Occasions: {occasions}.", "", *lines, ""]
        data[bench] = {"occasions": [str(p) for p, _ in reports], "verdicts": verdicts}
    return "\n".join(text), data


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="+", type=Path, help="one JSON per occasion")
    ap.add_argument("--out", type=Path, help="output path without extension (.md table and .json verdicts)")
    ap.add_argument("--header", type=Path, help="markdown put above the tables (commands, machine, findings)")
    a = ap.parse_args(argv)
    text, data = table(a.inputs)
    if a.header:
        text = a.header.read_text().rstrip() + "\n\n" + text
    print(text)
    if a.out:
        a.out.with_suffix(".md").write_text(text)
        a.out.with_suffix(".json").write_text(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
