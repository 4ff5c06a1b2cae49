"""The `nlpool` command."""

import argparse
import os
import sys


def _demo(args):
    from nlpool_keras.demo import format_report, run_demo

    report = run_demo(
        args.data,
        args.image_size,
        args.per_class,
        args.val_per_class,
        args.epochs,
        args.seed,
        args.output,
        args.data_dir,
        command=args.command_line,
    )
    print(format_report(report))
    print(f"\nreport: {os.path.join(args.output, 'report.json')}")


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from nlpool_keras.data import DEFAULT_ARCHIVE

    parser = argparse.ArgumentParser(prog="nlpool", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="train a small self-attentive CNN, export int8, run it in TFLM")
    demo.add_argument("--data", default=DEFAULT_ARCHIVE, help="image archive, folder, or tensorflow-datasets name")
    demo.add_argument("--data-dir", default=None, help="tensorflow-datasets data_dir")
    demo.add_argument("--image-size", type=int, default=48)
    demo.add_argument("--per-class", type=int, default=200, help="training images per class")
    demo.add_argument("--val-per-class", type=int, default=30)
    demo.add_argument("--epochs", type=int, default=12)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--output", default="runs/demo")
    demo.set_defaults(run=_demo)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.command_line = " ".join(["nlpool"] + argv)
    try:
        args.run(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"nlpool {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
