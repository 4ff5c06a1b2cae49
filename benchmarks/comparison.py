"""The pooling comparison: MobileNetV2 (alpha 0.35, 96 px) on Imagenette, one recipe for every
down-sampling kind, at the standard stage pattern and at the paper's aggressive one.

    .venv/bin/python benchmarks/comparison.py train --epochs 3     # on 2 CPU cores: hours; resumable
    .venv/bin/python benchmarks/comparison.py study --epochs 15    # the study plan (STUDY): days on 2 cores
    .venv/bin/python benchmarks/comparison.py summary --epochs 15  # its arms' mean and std: results/study.json
    .venv/bin/python benchmarks/comparison.py measure              # params, MACs, int8 memory per run
    .venv/bin/python benchmarks/tables.py                          # README table from the JSON files

`train` runs every (pattern, kind, seed 0) run, then seed 1 of "sa" and of the best baseline of
each pattern; a run whose result exists is skipped, and an interrupted one resumes from its
checkpoint (runs/comparison/<run>/). Each run writes benchmarks/results/comparison/<run>.json with
its top-1 on all val images, history, seed and the command; `measure` exports each trained run to
int8 (calibrated on 100 val images) and adds MACs, the int8 activation-memory lower bound, the
TFLM arena and flash bytes (needs TensorFlow). `train` and `study` also run under KERAS_BACKEND=jax
without TensorFlow; `study --train-only` is how benchmarks/study_on_gpu.sh trains on a GPU machine
that lacks the val split, and a later `study` here evaluates those runs on every val image.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nlpool_keras.data import DEFAULT_ARCHIVE  # noqa: E402
from nlpool_keras.models.downsampling import DOWNSAMPLE_KINDS  # noqa: E402
from nlpool_keras.quiet import run_quietly  # noqa: E402
from nlpool_keras.train.trainer import TrainConfig, train  # noqa: E402

PATTERNS = {"standard": "1222121", "middle": "2222121", "aggressive": "4222121"}
# the study at a real training budget: 3 seeds of the four main kinds at the paper's middle pattern
# and of sa and lip at the standard one, seed by seed so that every finished seed compares all of
# them; then one seed of the other kinds for context; then two more seeds of sa, then of lip, at
# the middle pattern, where self-attentive pooling's seeds spread most
STUDY = (
    [
        (p, k, s)
        for s in range(3)
        for p, kinds in (("middle", ("sa", "lip", "conv", "max")), ("standard", ("sa", "lip")))
        for k in kinds
    ]
    + [("middle", k, 0) for k in ("gaussian", "softpool", "avg")]
    + [("middle", k, s) for k in ("sa", "lip") for s in (3, 4)]
    # the authors' placements and patch size: LIP pooling the block's input ("before"), 3 seeds at
    # the middle pattern and one at the standard one; self-attentive pooling with their settings
    # (patch 1, heads per stage: attention over every position, slow), 2 seeds
    + [("middle", "lip", s, "before") for s in range(3)]
    + [("standard", "lip", 0, "before")]
    + [("middle", "sa", s, "paper") for s in range(2)]
    # self-attentive pooling before the block at the standard pattern: it fits the whole-graph
    # budgets that LIP before the block fits, so the equal-memory comparison tries both placements
    + [("standard", "sa", 0, "before")]
)
STUDY_EPOCHS = 15  # the study's training budget (`study` and `summary` default to it)
COMPARISON_EPOCHS = 3  # the first comparison (`train`)
# a study arm's settings beyond the pattern and kind: TrainConfig fields and their CLI options
VARIANTS = {
    "": {},
    "before": {"placement": "before"},
    "paper": {"pool_kwargs": "paper"},
}
KINDS = ("sa", "conv", "max", "avg", "lip", "gaussian", "softpool")
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "comparison")
RUNS = os.path.join("runs", "comparison")
assert set(KINDS) == set(DOWNSAMPLE_KINDS)


def run_name(pattern, kind, seed, epochs, variant=""):
    return f"{pattern}_{kind}{'_' + variant if variant else ''}_e{epochs}_s{seed}"


def summary_path(epochs):
    """benchmarks/results/study.json for the study's budget, study_e<epochs>.json for another."""
    name = "study.json" if epochs == STUDY_EPOCHS else f"study_e{epochs}.json"
    return os.path.join(os.path.dirname(RESULTS), name)


def _options(variant):
    """The CLI options of a variant's settings, e.g. " --placement before"."""
    return "".join(f" --{key.replace('_', '-')} {value}" for key, value in VARIANTS[variant].items())


def result_path(name):
    return os.path.join(RESULTS, name + ".json")


def read_result(name):
    path = result_path(name)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def write_result(name, result):
    os.makedirs(RESULTS, exist_ok=True)
    tmp = result_path(name) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, result_path(name))


def train_run(pattern, kind, seed, args, variant=""):
    name = run_name(pattern, kind, seed, args.epochs, variant)
    if read_result(name) is not None:
        return read_result(name)
    output = os.path.join(args.runs, name)
    config = TrainConfig(
        val_per_class=args.val_per_class,
        downsample=kind,
        strides=PATTERNS[pattern],
        alpha=0.35,
        image_size=96,
        data=args.data,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=seed,
        workers=args.workers,
        output=output,
        **VARIANTS[variant],
    )
    command = train_command(pattern, kind, seed, args.epochs, variant, args.batch_size, output)
    study_command = f"python benchmarks/comparison.py {args.step} --epochs {args.epochs}"
    print(f"== {name}: {command}", flush=True)
    started = time.time()
    evaluation = train(config, resume=True)
    if args.train_only:
        return None
    with open(os.path.join(config.output, "history.json")) as f:
        history = json.load(f)
    # the backends that trained it: a run may start on a GPU machine under JAX and end here
    backends = sorted({row.get("backend", evaluation["backend"]) for row in history})
    result = {
        "run": name,
        "pattern": pattern,
        "strides": PATTERNS[pattern],
        "downsample": kind,
        "variant": variant,
        **VARIANTS[variant],
        "seed": seed,
        "epochs": args.epochs,
        "val_top1": evaluation["val_top1"],
        "val_images": evaluation["val_images"],
        "params": evaluation["params"],
        "history": history,
        "train_seconds_last_session": round(time.time() - started, 1),
        "wall_seconds": round(sum(row["seconds"] for row in history), 1),
        # on the backend that trained every epoch; None when a run moved between machines
        "train_images_per_second": _median([row.get("train_images_per_second") for row in history])
        if len(backends) == 1
        else None,
        "backend": "+".join(backends),
        "command": command,
        "study_command": study_command,
    }
    write_result(name, result)
    return result


def train_command(pattern, kind, seed, epochs, variant="", batch_size=64, output=None):
    """The `nlpool train` command of one run of the comparison."""
    output = output or os.path.join(RUNS, run_name(pattern, kind, seed, epochs, variant))
    return (
        f"nlpool train --downsample {kind} --strides {PATTERNS[pattern]}{_options(variant)} --alpha 0.35 "
        f"--image-size 96 --epochs {epochs} --batch-size {batch_size} --seed {seed} --output {output}"
    )


def _median(values):
    values = sorted(v for v in values if v is not None)
    return values[len(values) // 2] if values else None


def best_baseline(pattern, epochs):
    results = [read_result(run_name(pattern, kind, 0, epochs)) for kind in KINDS if kind != "sa"]
    return max((r for r in results if r), key=lambda r: r["val_top1"])["downsample"]


def train_all(args):
    for pattern in args.patterns:
        for kind in args.kinds:
            train_run(pattern, kind, 0, args)
    for pattern in args.patterns:
        for kind in ("sa", best_baseline(pattern, args.epochs)):
            for seed in range(1, args.seeds):
                train_run(pattern, kind, seed, args)


def study_plan():
    """(pattern, kind, seed, variant) of each STUDY run, variant "" for the deployable network."""
    return [(pattern, kind, seed, variant[0] if variant else "") for pattern, kind, seed, *variant in STUDY]


def refused_figures(model, blockers):
    """What can be counted of a model that int8 export refuses (`blockers`: its
    `export.int8_blockers`, {layer: reason}): MACs on its Keras layers, its attention scores' bytes,
    and the reasons."""
    from nlpool_keras.profile import attention_scores, keras_macs

    return {"macs": keras_macs(model), "attention": attention_scores(model), "not_deployable": blockers}


def study(args):
    for pattern, kind, seed, variant in study_plan():
        train_run(pattern, kind, seed, args, variant)
        write_study_summary(args)


def study_arms(epochs=STUDY_EPOCHS):
    """{(strides, kind, variant): arm} of the study plan at `epochs`: each arm's finished runs
    (seed, val top-1 on all val images, command), their mean and std (None below 2 seeds), and
    the seeds still to train with their commands."""
    import statistics

    arms = {}
    for pattern, kind, seed, variant in study_plan():
        arm = arms.setdefault(
            (PATTERNS[pattern], kind, variant),
            {
                "pattern": pattern,
                "strides": PATTERNS[pattern],
                "downsample": kind,
                "variant": variant,
                "settings": VARIANTS[variant],
                "runs": [],
                "seeds_to_train": [],
            },
        )
        result = read_result(run_name(pattern, kind, seed, epochs, variant))
        if result is None:
            arm["seeds_to_train"].append({"seed": seed, "command": train_command(pattern, kind, seed, epochs, variant)})
            continue
        arm["runs"].append(
            {"run": result["run"], "seed": seed, "val_top1": result["val_top1"], "command": result["command"]}
        )
    for arm in arms.values():
        top1 = [run["val_top1"] for run in arm["runs"]]
        arm["val_top1_mean"] = statistics.mean(top1) if top1 else None
        arm["val_top1_std"] = statistics.stdev(top1) if len(top1) > 1 else None
    return arms


def write_study_summary(args):
    """summary_path(epochs), e.g. benchmarks/results/study.json: every arm of the study plan
    (`study_arms`) with the commands that train and summarise it."""
    summary = {
        "epochs": args.epochs,
        "command": f"python benchmarks/comparison.py study --epochs {args.epochs}",
        "summary_command": f"python benchmarks/comparison.py summary --epochs {args.epochs}",
        "arms": list(study_arms(args.epochs).values()),
    }
    path = summary_path(args.epochs)
    with open(path + ".tmp", "w") as f:
        json.dump(summary, f, indent=1)
    os.replace(path + ".tmp", path)


def measure_all(args):

    from nlpool_keras.data.pipeline import cached_split, center_crops
    from nlpool_keras.export import int8_blockers
    from nlpool_keras.models import load_weights
    from nlpool_keras.profile import profile_model
    from nlpool_keras.train.tasks import build_model

    val_images, _, _ = cached_split(args.data, "val", per_class=10)
    calibration = center_crops(val_images, 96)
    for path in sorted(os.listdir(RESULTS)):
        result = read_result(path[: -len(".json")])
        if "peak_activation_bytes" in result and not args.force:
            continue
        weights = os.path.join(args.runs, result["run"], "weights.npz")
        if not os.path.isfile(weights):  # runs/ stays on the machine that trained the run
            print(f"{result['run']}: skipped, its weights are not here ({weights})", flush=True)
            continue
        settings = VARIANTS[result.get("variant", "")]
        config = TrainConfig(downsample=result["downsample"], strides=result["strides"], **settings)
        model = build_model(config, 10)
        load_weights(model, weights)
        blockers = int8_blockers(model)  # e.g. the paper's attention over every position
        if blockers:
            report = refused_figures(model, blockers)
            result["not_deployable"] = report.pop("not_deployable")
            report.update(peak_activation_bytes=None, tflm_arena_bytes=None, flash_bytes=None)
        else:
            report = profile_model(model, calibration)
        result.update(
            macs=report["macs"],
            peak_activation_bytes=report["peak_activation_bytes"],
            tflm_arena_bytes=report["tflm_arena_bytes"],
            flash_bytes=report["flash_bytes"],
            attention=report["attention"],
            measure_command="python benchmarks/comparison.py measure",
        )
        write_result(result["run"], result)
        print(result["run"], {k: result[k] for k in ("macs", "peak_activation_bytes", "tflm_arena_bytes")}, flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("step", choices=("train", "study", "summary", "measure"))
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help=f"epochs per run (default: {COMPARISON_EPOCHS} for train, {STUDY_EPOCHS} for study and summary)",
    )
    parser.add_argument("--seeds", type=int, default=2, help="seeds of sa and of the best baseline")
    parser.add_argument("--patterns", nargs="+", default=list(PATTERNS), choices=list(PATTERNS))
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data", default=DEFAULT_ARCHIVE)
    parser.add_argument("--runs", default=RUNS)
    parser.add_argument("--force", action="store_true", help="measure again runs that have figures")
    parser.add_argument(
        "--train-only",
        action="store_true",
        help="train the plan's runs to their last epoch and write no result JSON (a machine without the "
        "whole val split: a later run of the same step here evaluates them)",
    )
    parser.add_argument(
        "--val-per-class", type=int, default=None, help="with --train-only: val images per class for per-epoch figures"
    )
    args = parser.parse_args(argv)
    if args.epochs is None:
        args.epochs = COMPARISON_EPOCHS if args.step == "train" else STUDY_EPOCHS
    if args.train_only and args.step != "study":
        parser.error(f"--train-only works with the study step only, received: step={args.step!r}")
    if args.val_per_class is not None and not args.train_only:
        parser.error(
            f"--val-per-class needs --train-only: results are measured on every val image, "
            f"received: --val-per-class {args.val_per_class}"
        )
    {"train": train_all, "study": study, "summary": write_study_summary, "measure": measure_all}[args.step](args)


if __name__ == "__main__":
    run_quietly(main)
