"""Side-by-side comparisons that hold on a shared machine.

A single back-to-back pair of measurements on a machine that other work shares gives a ratio that moves by tens
of percent from one occasion to the next (issue 18: PPO vs rejax 1.22x then 0.95x at 64 runs; BC vs d3rlpy 4.9x
then 5.9x). So every peer comparison here runs in rounds: each round measures every library once, the order
alternating between rounds (A B, B A, A B, ...) so that a load that rises or falls over the run favours neither;
each round gives a ratio from two measurements taken minutes apart at most. The summary states

* each library's median rate over the rounds and its spread (min-max),
* the load average seen at each measurement (min-max),
* the per-round ratios, and their median as THE ratio only when the rounds agree: the spread of the per-round
  ratios (max - min) is at most ``tolerance`` (15% by default) of their median. Otherwise no ratio is stated,
  only its range, and the table says the rounds disagree.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Callable, Sequence

TOLERANCE = 0.15


def order(libraries: Sequence[str], round_index: int) -> list[str]:
    """The measuring order of one round: as given on even rounds, reversed on odd ones."""
    return list(libraries) if round_index % 2 == 0 else list(reversed(libraries))


def run_rounds(
    measure: Callable[[str, int], dict], libraries: Sequence[str], rounds: int, rate_key: str
) -> dict[str, list[dict]]:
    """``measure(library, round)`` for every round and library in :func:`order`; each result gets the 1-minute
    load average seen just before it (``load``) and its ``round``. Returns the results per library, by round."""
    out: dict[str, list[dict]] = {lib: [] for lib in libraries}
    for r in range(rounds):
        for lib in order(libraries, r):
            load = os.getloadavg()[0]
            res = measure(lib, r)
            res.update(load=load, round=r)
            if "error" not in res and rate_key not in res:
                raise KeyError(f"{lib}'s result has no {rate_key!r}: {sorted(res)}")
            out[lib].append(res)
    return out


def summarize(per_library: dict[str, list[dict]], rate_key: str, tolerance: float = TOLERANCE) -> dict:
    """The summary of a two-library comparison (the first library over the second; see the module docstring).
    Rounds where either library failed are left out of the ratio and counted in ``failed_rounds``."""
    (a, ra), (b, rb) = per_library.items()
    pairs = [(x, y) for x, y in zip(ra, rb) if "error" not in x and "error" not in y]
    rates = {lib: [x[rate_key] for x in rs if "error" not in x] for lib, rs in per_library.items()}
    loads = [x["load"] for rs in per_library.values() for x in rs if "load" in x]  # set after each measure()
    ratios = [x[rate_key] / y[rate_key] for x, y in pairs]
    summary: dict = {
        "libraries": [a, b],
        "rate_key": rate_key,
        "median": {lib: statistics.median(v) if v else None for lib, v in rates.items()},
        "spread": {lib: [min(v), max(v)] if v else None for lib, v in rates.items()},
        "rates": rates,
        "ratios": ratios,
        "load": [min(loads), max(loads)] if loads else None,
        "failed_rounds": len(ra) - len(pairs),
        "tolerance": tolerance,
    }
    if ratios:
        med = statistics.median(ratios)
        summary["ratio_range"] = [min(ratios), max(ratios)]
        summary["agree"] = len(ratios) >= 2 and (max(ratios) - min(ratios)) <= tolerance * med
        summary["ratio"] = med if summary["agree"] else None
    else:
        summary.update(ratio_range=None, agree=False, ratio=None)
    return summary


def ratio_text(s: dict) -> str:
    """``1.10x (rounds 1.05-1.14)``, or the range with 'rounds disagree' when no ratio can be stated."""
    if not s["ratios"]:
        return "no complete round"
    lo, hi = s["ratio_range"]
    if len(s["ratios"]) < 2:
        return f"{s['ratios'][0]:.2f}x (one round: not a stated ratio)"
    if s["agree"]:
        return f"{s['ratio']:.2f}x (rounds {lo:.2f}-{hi:.2f})"
    return f"rounds disagree: {lo:.2f}x-{hi:.2f}x (spread over {100 * s['tolerance']:.0f}%), no ratio stated"


def rate_text(s: dict, lib: str, spec: str = ",.0f") -> str:
    """A library's median rate with its spread over the rounds: ``1,234 (1,100-1,300)``."""
    if s["median"][lib] is None:
        return "failed"
    lo, hi = s["spread"][lib]
    return f"{format(s['median'][lib], spec)} ({format(lo, spec)}-{format(hi, spec)})"


def across_occasions(summaries: Sequence[dict]) -> dict:
    """Whether one comparison, measured on several occasions (each a :func:`summarize`), reproduces.

    An occasion's stated spread is the range of its per-round ratios. The occasions agree when those ranges
    share a value (the largest low is at most the smallest high): then some single ratio is consistent with every
    occasion. ``ratio`` is the median of every per-round ratio of every occasion, stated only when they agree.
    """
    ranges = [s["ratio_range"] for s in summaries if s.get("ratio_range")]
    every = [r for s in summaries for r in s.get("ratios", [])]
    common = [max(lo for lo, _ in ranges), min(hi for _, hi in ranges)] if ranges else None
    agree = len(ranges) >= 2 and len(ranges) == len(summaries) and common is not None and common[0] <= common[1]
    return {
        "occasions": len(summaries),
        "ranges": ranges,
        "medians": [statistics.median(s["ratios"]) if s.get("ratios") else None for s in summaries],
        "common": common if agree else None,
        "agree": agree,
        "ratio": statistics.median(every) if agree else None,
        "all_range": [min(every), max(every)] if every else None,
    }


def within_spread(reference: Sequence[dict], later: Sequence[dict], min_reference: int = 3) -> dict:
    """Whether later occasions reproduce a ratio whose spread was stated from earlier ones.

    The rounds of one occasion share the machine's state, so their range understates how much the ratio moves
    from one occasion to the next. Here the occasion is the unit: from the ``reference`` occasions' median ratios
    ``m_1..m_n`` (n >= ``min_reference``), on the log scale (a ratio is multiplicative), the stated ratio is the
    geometric mean ``exp(mean)`` and the stated spread the 95% prediction interval for one new occasion,

        exp(mean +- t_{0.975, n-1} * sd * sqrt(1 + 1/n))      (sd: the sample standard deviation of log m_i),

    and each ``later`` occasion's median must fall inside it.
    """
    from scipy import stats

    ref = [statistics.median(s["ratios"]) for s in reference if s.get("ratios")]
    new = [statistics.median(s["ratios"]) for s in later if s.get("ratios")]
    if len(ref) < max(2, min_reference) or len(ref) < len(reference) or not new or len(new) < len(later):
        return {"spread": None, "ratio": None, "later": new, "inside": None}
    logs = [math.log(m) for m in ref]
    mean, sd, n = statistics.fmean(logs), statistics.stdev(logs), len(logs)
    half = float(stats.t.ppf(0.975, n - 1)) * sd * math.sqrt(1 + 1 / n)
    lo, hi = math.exp(mean - half), math.exp(mean + half)
    return {
        "spread": [lo, hi],
        "ratio": math.exp(mean),
        "reference": ref,
        "later": new,
        "inside": all(lo <= m <= hi for m in new),
    }


def program_cost(compiled) -> dict:
    """What a compiled JAX program does, independent of the machine's load: XLA's cost analysis (flops, bytes
    accessed, transcendentals; a loop body is counted once, not per trip) and the optimised HLO's size (fused
    kernels and while loops). Two libraries' programs for the same algorithm and settings can be compared by it."""
    cost = compiled.cost_analysis()
    cost = (cost[0] if cost else {}) if isinstance(cost, list) else (cost or {})
    text = compiled.as_text()
    return {
        "flops": cost.get("flops"),
        "bytes_accessed": cost.get("bytes accessed"),
        "transcendentals": cost.get("transcendentals"),
        "hlo_lines": len(text.splitlines()),
        "fusions": text.count(" fusion("),
        "while_loops": text.count(" while("),
    }


def load_text(s: dict) -> str:
    return "-" if s["load"] is None else f"{s['load'][0]:.1f}-{s['load'][1]:.1f}"
