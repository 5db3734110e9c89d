"""benchmarks/sidebyside.py: alternating rounds and when a ratio may be stated (pure Python, no JAX)."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import sidebyside  # noqa: E402


def test_rounds_alternate_and_record_load():
    seen = []

    def measure(lib, r):
        seen.append((r, lib))
        return {"rate": {"a": 10.0, "b": 5.0}[lib]}

    per = sidebyside.run_rounds(measure, ["a", "b"], 3, "rate")
    assert seen == [(0, "a"), (0, "b"), (1, "b"), (1, "a"), (2, "a"), (2, "b")]
    assert [x["round"] for x in per["a"]] == [0, 1, 2] and all("load" in x for x in per["b"])
    s = sidebyside.summarize(per, "rate")
    assert s["ratios"] == [2.0, 2.0, 2.0] and s["agree"] and s["ratio"] == 2.0
    assert sidebyside.ratio_text(s) == "2.00x (rounds 2.00-2.00)"


def _per(a_rates, b_rates):
    return {
        "a": [{"rate": x, "load": 1.0} for x in a_rates],
        "b": [{"rate": x, "load": 2.0} for x in b_rates],
    }


def test_ratio_stated_only_when_rounds_agree():
    # per-round ratios 1.0, 1.1, 1.2: spread 0.2 > 15% of 1.1 -> no ratio
    s = sidebyside.summarize(_per([10, 11, 12], [10, 10, 10]), "rate")
    assert not s["agree"] and s["ratio"] is None and s["ratio_range"] == [1.0, 1.2]
    assert "rounds disagree" in sidebyside.ratio_text(s)
    # 1.0, 1.05, 1.1: spread 0.1 <= 0.15 * 1.05 -> stated, the median
    s = sidebyside.summarize(_per([10, 10.5, 11], [10, 10, 10]), "rate")
    assert s["agree"] and abs(s["ratio"] - 1.05) < 1e-12
    assert s["median"] == {"a": 10.5, "b": 10} and s["spread"]["a"] == [10, 11] and s["load"] == [1.0, 2.0]
    assert sidebyside.rate_text(s, "a", ".1f") == "10.5 (10.0-11.0)"


def test_failed_rounds_and_single_round():
    per = _per([10, 10], [5, 5])
    per["b"][1] = {"error": "boom", "load": 1.0}
    s = sidebyside.summarize(per, "rate")
    assert s["failed_rounds"] == 1 and s["ratios"] == [2.0] and s["ratio"] is None
    assert "one round" in sidebyside.ratio_text(s)


def test_occasions_agree_only_when_their_round_ranges_overlap():
    occ = lambda *ratios: sidebyside.summarize(_per([10 * r for r in ratios], [10] * len(ratios)), "rate")
    a = sidebyside.across_occasions([occ(1.0, 1.1, 1.05), occ(1.08, 1.12, 1.1), occ(1.09, 1.15, 1.2)])
    assert a["agree"] and a["common"] == [1.09, 1.1] and a["occasions"] == 3
    assert abs(a["ratio"] - 1.1) < 1e-12  # median of all nine per-round ratios
    b = sidebyside.across_occasions([occ(1.0, 1.05), occ(1.2, 1.25)])  # disjoint: 1.05 < 1.2
    assert not b["agree"] and b["ratio"] is None and b["common"] is None and b["all_range"] == [1.0, 1.25]
    assert not sidebyside.across_occasions([occ(1.0, 1.1)])["agree"]  # one occasion is not a reproduction


def test_occasions_table_judges_agreement_over_the_chosen_occasions(tmp_path):
    """An earlier occasion that ran another setting stays in the table but out of the verdict (--agree-over)."""
    import occasions

    occ = lambda *ratios: sidebyside.summarize(_per([10 * r for r in ratios], [10] * len(ratios)), "rate")
    paths = []
    for k, ratios in enumerate([(0.8, 0.82), (1.0, 1.04), (1.02, 1.05)]):
        s = dict(occ(*ratios), algo="ppo", libraries=["jaxrl", "rejax"], runs=1)
        paths.append(tmp_path / f"ppo_{k}.json")
        paths[-1].write_text(json.dumps({"ratios": [s], "date": f"occasion {k}"}))
    _, every = occasions.table(paths)
    _, later = occasions.table(paths, agree_over={"ppo": [2, 3]})
    bench = "throughput vs rejax (benchmarks/throughput.py)"
    assert not every[bench]["verdicts"]["ppo vs rejax, 1 run"]["agree"]
    judged = later[bench]["verdicts"]["ppo vs rejax, 1 run"]
    assert judged["agree"] and judged["common"] == [1.02, 1.04] and judged["occasions"] == 2
    text, _ = occasions.table(paths, agree_over={"ppo": [2, 3]})
    assert "occasions (2, 3) agree?" in text and "0.81x (0.80-0.82)" in text


def test_occasions_are_compared_only_within_one_thread_setting(tmp_path):
    """An occasion pinned to one core (taskset) is another setting: its own table, never judged with 2-core ones."""
    import occasions

    occ = lambda *ratios: sidebyside.summarize(_per([10 * r for r in ratios], [10] * len(ratios)), "rate")
    paths = []
    for k, cores in enumerate([2, 1, 1]):
        row = {"algo": "bc", "summary": occ(3.0 + k, 3.1 + k)}
        paths.append(tmp_path / f"offline_{k}.json")
        report = {"peer": [row], "hardware": {"usable_cores": cores}, "args": {"peer_threads": 1}, "date": str(k)}
        paths[-1].write_text(json.dumps(report))
    _, data = occasions.table(paths)
    two, one = (f"offline vs d3rlpy (benchmarks/offline.py --peer), {c}, d3rlpy 1 torch thread" for c in
                ("2 usable cores", "1 usable core"))  # fmt: skip
    assert set(data) == {two, one}
    assert len(data[two]["occasions"]) == 1 and len(data[one]["occasions"]) == 2


def test_later_occasions_checked_against_the_spread_of_earlier_ones():
    """The occasion is the unit: a 95% prediction interval from earlier occasions' medians, later medians inside."""
    import math

    occ = lambda *ratios: sidebyside.summarize(_per([10 * r for r in ratios], [10] * len(ratios)), "rate")
    ref = [occ(1.0, 1.0), occ(1.2, 1.2), occ(1.1, 1.1)]  # their rounds never overlap
    assert not sidebyside.across_occasions(ref)["agree"]
    # by hand: logs of 1.0, 1.2, 1.1; mean = log(1.32) / 3; sd from the deviations; t(0.975, 2) = 4.302653
    logs = [0.0, math.log(1.2), math.log(1.1)]
    mean = sum(logs) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / 2)
    half = 4.302653 * sd * math.sqrt(4 / 3)
    ok = sidebyside.within_spread(ref, [occ(1.05, 1.06), occ(1.25, 1.25)])
    assert abs(ok["ratio"] - 1.32 ** (1 / 3)) < 1e-9
    assert abs(ok["spread"][0] - math.exp(mean - half)) < 1e-5 and abs(ok["spread"][1] - math.exp(mean + half)) < 1e-5
    assert ok["inside"] and abs(ok["later"][0] - 1.055) < 1e-12  # 1.055 and 1.25 lie in [0.70, 1.73]
    assert sidebyside.within_spread(ref, [occ(1.05, 1.06), occ(1.9, 1.9)])["inside"] is False  # one outside
    assert sidebyside.within_spread(ref[:2], [occ(1.1, 1.1)])["spread"] is None  # two occasions state no spread
