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


def _occasions(ks: list[int]) -> str:
    return ", ".join(str(i + 1) for i in ks)


def one_table(
    reports: list[tuple[Path, dict]], agree_over: list[int] | None = None, spread_from: list[int] | None = None
) -> tuple[list[str], dict]:
    """The table of one benchmark's occasions (columns) and comparisons (rows), and each row's verdict over the
    occasions ``agree_over`` (0-based; default all). With ``spread_from`` (0-based) two more columns: the ratio
    those occasions state with its 95% prediction interval for a new occasion, and whether every later judged
    occasion's median falls inside it (``sidebyside.within_spread``)."""
    per = [comparisons(r) for _, r in reports]
    judged = list(range(len(per))) if agree_over is None else agree_over
    over = "" if agree_over is None else f" ({_occasions(judged)})"
    later = [i for i in judged if spread_from and i > max(spread_from)]
    names = list(dict.fromkeys(k for c in per for k in c))
    extra = (
        [
            f"occasions {_occasions(spread_from)}: ratio (95% prediction interval)",
            f"later occasions ({_occasions(later)}) inside?",
        ]
        if spread_from
        else []
    )
    lines = [
        "| comparison | "
        + " | ".join(f"occasion {i + 1}: ratio (rounds), load" for i in range(len(reports)))
        + f" | occasions{over} agree? | ratio over their rounds |"
        + "".join(f" {e} |" for e in extra),
        "|---|" + "---|" * len(reports) + "---|---:|" + "---|" * len(extra),
    ]
    verdicts = {}
    for name in names:
        verdict = sidebyside.across_occasions([per[i][name] for i in judged if name in per[i]])
        if spread_from:
            pick = lambda ks: [per[i][name] for i in ks if name in per[i]]  # noqa: E731
            verdict["spread_check"] = sidebyside.within_spread(pick(spread_from), pick(later))
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
        row = f"| {name} | " + " | ".join(cells) + f" | {agree} | {ratio} |"
        if spread_from:
            check = verdict["spread_check"]
            if check["spread"] is None:
                row += " - | - |"
            else:
                (lo, hi), shown = check["spread"], ", ".join(f"{m:.2f}" for m in check["later"])
                row += f" {check['ratio']:.2f}x ({lo:.2f}-{hi:.2f}) | {'yes' if check['inside'] else 'no'} ({shown}) |"
        lines.append(row)
    return lines, verdicts


def _pick(option: str, choices: dict[str, list[int]] | None, name: Path, bench: str, n: int) -> list[int] | None:
    """The 0-based occasions an option chose for the benchmark whose first file is ``name`` (tag = the name up to
    its first ``_``), checked against its ``n`` occasions."""
    chosen = [ks for tag, ks in (choices or {}).items() if name.name.split("_")[0] == tag]
    if not chosen:
        return None
    bad = [k for k in chosen[0] if not 1 <= k <= n]
    if bad:
        raise SystemExit(f"{option} {bad}: {bench} has occasions 1..{n}")
    return [k - 1 for k in chosen[0]]


def table(
    paths: list[Path], agree_over: dict[str, list[int]] | None = None, spread_from: dict[str, list[int]] | None = None
) -> tuple[str, dict]:
    """One table per benchmark over its occasions (in the order given), and the verdicts as data; ``agree_over``:
    ``{file tag: occasions (1-based) whose agreement is judged}``, where an earlier occasion of that benchmark ran
    another setting; ``spread_from``: ``{file tag: occasions (1-based) whose median ratios state the spread}`` that
    the later judged occasions are checked against."""
    groups: dict[str, list[tuple[Path, dict]]] = {}
    for p in paths:
        report = json.loads(p.read_text())
        groups.setdefault(benchmark_of(report), []).append((p, report))
    text, data = [], {}
    for bench, reports in groups.items():
        occasions = "; ".join(f"{i + 1}. {occasion_label(r, p)} (`{p.name}`)" for i, (p, r) in enumerate(reports))
        judged = _pick("--agree-over", agree_over, reports[0][0], bench, len(reports))
        spread = _pick("--spread-from", spread_from, reports[0][0], bench, len(reports))
        lines, verdicts = one_table(reports, judged, spread)
        text += [f"## {bench}", "", f"Occasions: {occasions}.", "", *lines, ""]
        data[bench] = {
            "occasions": [str(p) for p, _ in reports],
            "judged": judged,
            "spread_from": spread,
            "verdicts": verdicts,
        }
    return "\n".join(text), data


def _tagged(ap: argparse.ArgumentParser, option: str, items: list[str]) -> dict[str, list[int]]:
    out = {}
    for item in items:
        tag, _, ks = item.partition("=")
        if not ks:
            ap.error(f"{option} {item!r}: expected TAG=K,L,... (e.g. ppo=3,4,5)")
        out[tag] = [int(k) for k in ks.split(",")]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="+", type=Path, help="one JSON per occasion")
    ap.add_argument("--out", type=Path, help="output path without extension (.md table and .json verdicts)")
    ap.add_argument("--header", type=Path, help="markdown put above the tables (commands, machine, findings)")
    ap.add_argument(
        "--agree-over",
        action="append",
        default=[],
        metavar="TAG=K,L,...",
        help="judge the agreement of the occasions whose files are tagged TAG (TAG_<date>.json) over occasions "
        "K, L, ... (1-based): those that ran the current setting (repeatable)",
    )
    ap.add_argument(
        "--spread-from",
        action="append",
        default=[],
        metavar="TAG=K,L,...",
        help="state the ratio and its 95%% prediction interval from occasions K, L, ... (their medians) and check "
        "the later judged occasions against it (repeatable)",
    )
    a = ap.parse_args(argv)
    agree_over = _tagged(ap, "--agree-over", a.agree_over)
    spread_from = _tagged(ap, "--spread-from", a.spread_from)
    text, data = table(a.inputs, agree_over, spread_from)
    if a.header:
        text = a.header.read_text().rstrip() + "\n\n" + text
    print(text)
    if a.out:
        a.out.with_suffix(".md").write_text(text)
        a.out.with_suffix(".json").write_text(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
