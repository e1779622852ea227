"""Short accuracy screens of optimiser knobs (issue 9 item 7; not a test): one process, the dataset
loaded once, each configuration trained in turn with the fast recipe's model and loss, one thread.

    python benchmarks/accuracy_screen.py problem_c DATA_DIR '[{"layers": "elu-12,tanh-12,sin-12,tanh-12",
        "steps": 12000, "lr": 0.02, "seed": 0}, ...]'

DATA_DIR is a dataset folder (``fhn_automl.physics.datasets.ensure_dataset``). Knobs per configuration:
layers, steps, seed (sets the init and the batch order), lr, bs (batch, 1024), warm (warm-up fraction,
0.02), sched (cosine | linear | const_decay with tail | const), final (lr factor at the end, 1e-3),
betas, eps, clip (max gradient norm). Fused Adam, outputs standardised, inputs scaled, as the fast
recipe. Prints one JSON line per configuration: the error curve (mean |dU| + |dW| on a fixed
100k-point subset of the Euler validation set, at each quarter), wall seconds, load. The loop is its
own, not ``learning.train``, so that knobs the recipes do not expose can be screened
a setting that
wins here is then measured by ``benchmarks/accuracy.py`` against DOP853. Results: RESULTS.md
("Accuracy against DOP853").
"""
import json
import math
import sys
import time

import numpy as np
import torch

from fhn_automl.learning import training_data
from fhn_automl.learning.architecture import parse_layers
from fhn_automl.learning.mlp import build_model
from fhn_automl.learning.recipes import warmup_cosine_factor
from fhn_automl.learning.spec import ModelSpec
from fhn_automl.physics.problems import get_problem

if len(sys.argv) != 4:
    raise SystemExit(__doc__)
torch.set_num_threads(1)
problem_name, data_dir = sys.argv[1], sys.argv[2]
configs = json.loads(sys.argv[3])
problem = get_problem(problem_name)
t0 = time.perf_counter()
tr = training_data.load_points(problem, data_dir, "train")
va = training_data.subsample(training_data.load_points(problem, data_dir, "val"), 100_000, 1)
print("train points", len(tr), "load s", round(time.perf_counter() - t0), flush=True)
X, Y = torch.as_tensor(tr.x), torch.as_tensor(tr.y)
VX, VY = torch.as_tensor(va.x), torch.as_tensor(va.y)
mean, std = tr.y.mean(0).astype(np.float64), tr.y.std(0).astype(np.float64)
Yn = (Y - torch.as_tensor(mean, dtype=torch.float32)) / torch.as_tensor(std, dtype=torch.float32)


def factor(c, steps):
    warm = int(round(c.get("warm", 0.02) * steps))
    final = c.get("final", 1e-3)
    kind = c.get("sched", "cosine")
    def f(k):
        if warm > 0 and k < warm:
            return (k + 1) / warm
        p = min(1.0, (k - warm) / max(1, steps - warm))
        if kind == "cosine":
            return warmup_cosine_factor(k, steps, warm, final)
        if kind == "linear":
            return final + (1 - final) * (1 - p)
        if kind == "const_decay":  # constant, then cosine over the last `tail` fraction
            tail = c.get("tail", 0.2)
            q = max(0.0, (p - (1 - tail)) / tail)
            return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * q))
        if kind == "const":
            return 1.0
        raise ValueError(kind)
    return f


def run(c):
    layers = parse_layers(c["layers"])
    spec = ModelSpec(problem=problem.name, kind="ddnn", layers=layers, inputs=problem.inputs, outputs=problem.outputs,
                     ranges={n: problem.ranges[n] for n in problem.inputs}, input_scaling=True,
                     output_mean=tuple(mean), output_std=tuple(std))
    seed = c.get("seed", 0)
    torch.manual_seed(seed)
    model = build_model(spec)
    steps = c["steps"]
    bs = c.get("bs", 1024)
    lr = c.get("lr", 1e-2)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=tuple(c.get("betas", (0.9, 0.999))),
                           eps=c.get("eps", 1e-8), fused=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor(c, steps))
    clip = c.get("clip")
    g = torch.Generator().manual_seed(1000 + seed)
    t0 = time.perf_counter()
    curve = []
    for k in range(1, steps + 1):
        idx = torch.randint(0, X.shape[0], (bs,), generator=g)
        d = model.forward_normalised(X[idx]) - Yn[idx]
        loss = 0.5 * (d ** 2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        sched.step()
        if k % max(1, steps // 4) == 0 or k == steps:
            with torch.no_grad():
                e = (model(VX) - VY).abs().sum(1)
            curve.append((k, float(e.mean()), round(time.perf_counter() - t0)))
    out = {"cfg": c, "curve": curve, "final": curve[-1][1], "wall": round(time.perf_counter() - t0, 1),
           "load1": round(float(open("/proc/loadavg").read().split()[0]), 2)}
    print(json.dumps(out), flush=True)


for c in configs:
    run(c)
