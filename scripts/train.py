#!/usr/bin/env python
"""Train a row's network on HR images (house weights): L1 loss, Adam, random patches, resumable.

    python scripts/train.py ROW --images DIR [DIR ...] --minutes M [--degrade bicubic|bsrgan|blur]
        [--init CHECKPOINT] [--warm-start] [--val DIR] [--out DIR] [--patch N] [--batch N] [--lr X] [--seed N]
        [--threads N] [--max-steps N] [--val-every S] [--device auto|cpu|cuda]

Writes ``OUT/state.pt`` (resumable: running the same command again continues from it),
``OUT/checkpoint.pt`` (official key layout; ``--weights OUT/checkpoint.pt`` loads it) and
``OUT/train_log.json``. Without ``--val``, a seeded choice of ``--n-val`` training images is held
out for validation. Never train on Set5/Set14 (the evaluation sets). Exit codes: 0 ok, 2 bad
arguments, 1 failure.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vacc_deploy.errors import VaccError  # noqa: E402


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        sys.stderr.write(f"train.py: error: {message}\n")
        raise SystemExit(2)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = _Parser(description=__doc__.splitlines()[0])
    p.add_argument("row")
    p.add_argument("--images", nargs="+", type=Path, required=True, help="folders of HR training images")
    p.add_argument("--minutes", type=float, required=True, help="wall-time budget of this invocation")
    p.add_argument("--degrade", choices=("bicubic", "bsrgan", "blur"), default=None,
                   help="how LR is made (default: blur for scale-1 rows, else MATLAB bicubic)")
    p.add_argument("--init", type=Path, default=None, help="start from this checkpoint (matching entries)")
    p.add_argument("--warm-start", action="store_true",
                   help="start from the family's bilinear-upscaling initialisation (LESRCNN), before --init")
    p.add_argument("--val", type=Path, default=None, help="validation HR folder (default: held-out images)")
    p.add_argument("--n-val", type=int, default=4, help="images held out for validation without --val")
    p.add_argument("--out", type=Path, default=None, help="run folder (default work/train/ROW)")
    p.add_argument("--patch", type=int, default=48, help="LR patch side")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--max-steps", type=int, default=None, help="stop at this total step count")
    p.add_argument("--val-every", type=float, default=180.0, help="seconds between validations")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    from pydantic import ValidationError

    from vacc_deploy.training.loop import TrainOptions, train

    try:
        opts = TrainOptions(row=args.row, images=args.images, out=args.out or Path("work/train") / args.row,
                            minutes=args.minutes, max_steps=args.max_steps, degrade=args.degrade,
                            init=args.init, warm_start=args.warm_start, val=args.val, n_val=args.n_val, patch=args.patch,
                            batch=args.batch, lr=args.lr, seed=args.seed, threads=args.threads,
                            val_every_s=args.val_every, device=args.device,
                            command=shlex.join(["python", "scripts/train.py", *(argv or sys.argv[1:])]))
        result = train(opts)
    except ValidationError as exc:
        first = exc.errors()[0]
        sys.stderr.write(f"train.py: error: --{'.'.join(map(str, first['loc']))}: {first['msg']}\n")
        return 2
    except VaccError as exc:
        flag = f"--{exc.option.replace('_', '-')}: " if exc.option else ""
        sys.stderr.write(f"train.py: error: {flag}{exc}\n")
        return exc.exit_code
    print(f"{opts.row}: {result.step} steps, {result.elapsed_s / 60:.1f} min; checkpoint {result.checkpoint}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
