"""The comparison study's bookkeeping (benchmarks/comparison.py, benchmarks/tables.py) on made-up
runs: its arms, their mean and std, the seeds still to train and the placement gaps, against
figures computed by hand."""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import comparison  # noqa: E402
import tables  # noqa: E402

# (pattern, kind, variant): val top-1 per seed
RUNS = {
    ("standard", "sa", ""): [0.70, 0.72, 0.71],
    ("standard", "lip", ""): [0.69, 0.70, 0.71],
    ("standard", "lip", "before"): [0.65],
    ("middle", "sa", "paper"): [0.60],
}


@pytest.fixture
def study(tmp_path, monkeypatch):
    monkeypatch.setattr(comparison, "RESULTS", str(tmp_path))
    for (pattern, kind, variant), top1 in RUNS.items():
        for seed, value in enumerate(top1):
            name = comparison.run_name(pattern, kind, seed, comparison.STUDY_EPOCHS, variant)
            with open(tmp_path / f"{name}.json", "w") as f:
                json.dump({"run": name, "val_top1": value, "command": f"train {name}"}, f)
    tables._study_arms.cache_clear()
    yield tmp_path
    tables._study_arms.cache_clear()


def test_study_plan_names_every_variant_by_its_settings():
    plan = comparison.study_plan()
    assert all(variant in comparison.VARIANTS for *_, variant in plan)
    assert plan.count(("middle", "lip", 0, "before")) == 1 and ("middle", "sa", 1, "paper") in plan
    assert len(set(plan)) == len(plan)


def test_study_arms_aggregate_finished_seeds_and_list_the_rest(study):
    arms = comparison.study_arms()
    sa = arms["1222121", "sa", ""]
    assert [run["val_top1"] for run in sa["runs"]] == [0.70, 0.72, 0.71]
    assert sa["val_top1_mean"] == pytest.approx(0.71) and sa["val_top1_std"] == pytest.approx(0.01)
    assert sa["seeds_to_train"] == []
    lip_before = arms["1222121", "lip", "before"]
    assert lip_before["val_top1_mean"] == pytest.approx(0.65) and lip_before["val_top1_std"] is None
    paper = arms["2222121", "sa", "paper"]
    assert [s["seed"] for s in paper["seeds_to_train"]] == [1]
    assert "--pool-kwargs paper" in paper["seeds_to_train"][0]["command"]
    assert "--seed 1" in paper["seeds_to_train"][0]["command"]
    untrained = arms["2222121", "conv", ""]
    assert untrained["runs"] == [] and untrained["val_top1_mean"] is None
    assert [s["seed"] for s in untrained["seeds_to_train"]] == [0, 1, 2]


def test_the_study_summary_is_kept_apart_from_other_budgets(study, monkeypatch):
    assert os.path.basename(comparison.summary_path(comparison.STUDY_EPOCHS)) == "study.json"
    assert os.path.basename(comparison.summary_path(3)) == "study_e3.json"
    monkeypatch.setattr(comparison, "summary_path", lambda epochs: str(study / f"summary_{epochs}.json"))
    comparison.main(["summary"])  # the study's budget by default
    with open(study / f"summary_{comparison.STUDY_EPOCHS}.json") as f:
        summary = json.load(f)
    assert summary["epochs"] == comparison.STUDY_EPOCHS
    arms = {(pattern, kind, variant) for pattern, kind, _, variant in comparison.study_plan()}
    assert len(summary["arms"]) == len(comparison.study_arms()) == len(arms)


def test_placement_gaps_are_differences_of_arm_means(study):
    rows = {line.split(" | ")[0].strip("| "): line for line in tables.placement_gaps_table().splitlines()[2:]}
    # 1222121: sa after 0.71, LIP after 0.70, LIP before 0.65; 2222121 has no LIP before here
    assert "+1.00 pt (3 vs 3 seeds, stds 1.00/1.00)" in rows["matched placement"]
    assert "+6.00 pt (3 vs 1 seeds, stds 1.00/—)" in rows["cross placement (the paper's comparison)"]
    assert "+5.00 pt (3 vs 1 seeds, stds 1.00/—)" in rows["placement alone"]
    # the authors' STL-10 figures: 81.45 - 79.16 and 75.25 - 68.23 (sa after, LIP before)
    assert "+2.29 pt | +7.02 pt" in rows["cross placement (the paper's comparison)"]
    assert rows["matched placement"].endswith("seeds to train |")
    # both before: planned at the standard pattern only
    assert rows["matched placement, both before"].endswith("| seeds to train | — |")


def test_arm_cells_say_what_is_still_training(study):
    assert tables._arm_cell("1222121", "sa", "") == "71.00 ± 1.00 (3)"
    assert tables._arm_cell("2222121", "sa", "paper") == "60.00 (1; 1 more to train)"
    assert tables._arm_cell("2222121", "conv", "") == "3 seeds to train"
    assert tables._arm_cell("1222121", "sa", "before") == "1 seed to train"
