"""The thesis' reference numbers, transcribed from its text (the spec, ``seeds/000_8187595d93cbfadd.txt``).

One home for every figure the reproduction report (``python -m fhn_automl.reproduce``) and the
analysis tests compare against. Each table carries where it comes from (section, table number, and
the line of the thesis text file where its caption starts, since the text has no page numbers).
Layer sequences are written in this project's notation (``silu-32,tanh-32``); the thesis' shape-class
labels are kept as printed, even where they disagree with the thesis' own definitions (noted below).

Known oddities of the printed tables, kept as printed and flagged in the reports:

- Table 4 and Table 17 call (SiLU-8, Tanh-32, SiLU-8) "bowtie", Table 16 calls it "diamond"; by the
  definitions of 4.2.1 (bowtie: a smaller middle layer) it is a diamond, which is what
  ``fhn_automl.learning.architecture.shape_class`` returns.
- Table 7's worst small-window model (1.18e-1) is worse than the worst large-window one and lies
  ~60 standard deviations above its mean; it may be a misprint of 1.18e-2.
- Table 4's "Best model < 64" and Table 8's "Best model < 64 / < 32" rows have 48, 64 and 32 neurons:
  the bounds are inclusive (<=), and the report's rules use <=.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

THESIS_TEXT = "seeds/000_8187595d93cbfadd.txt"


@dataclass(frozen=True)
class NotableRule:
    """How a 'notable model' row is chosen (thesis Tables 4, 8, 9, 10).

    ``smallest_below``: fewest neurons among models with mean error < ``value`` (ties: lower error);
    ``best_within``: lowest error among models with at most ``value`` neurons;
    ``best_depth``: lowest error among models with ``value`` hidden layers; ``best``: lowest error.
    """

    kind: str
    value: float | None = None

    def label(self) -> str:
        if self.kind == "smallest_below":
            return f"smallest model < {self.value:g}"
        if self.kind == "best_within":
            return f"best model <= {int(self.value)} neurons"
        if self.kind == "best_depth":
            return f"best {int(self.value)}-layer model"
        if self.kind == "best":
            return "best model"
        raise ValueError(f"unknown notable rule {self.kind!r}")


@dataclass(frozen=True)
class ThesisTable:
    """One table of the thesis: its rows as dicts with the thesis' columns."""

    number: int
    title: str
    source: str                     # section, table and line in THESIS_TEXT
    columns: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    notes: tuple[str, ...] = field(default_factory=tuple)


def _model(layers: str, mean_err: float, neurons: int, shape_class: str | None, note: str,
           rule: NotableRule) -> dict[str, Any]:
    return {"layers": layers, "mean_err": mean_err, "neurons": neurons, "shape_class": shape_class,
            "note": note, "rule": rule}


SMALLEST_001 = NotableRule("smallest_below", 0.01)
SMALLEST_0001 = NotableRule("smallest_below", 0.001)
SMALLEST_0002 = NotableRule("smallest_below", 0.002)
SMALLEST_01 = NotableRule("smallest_below", 0.1)
BEST = NotableRule("best")
BEST_TWO_LAYER = NotableRule("best_depth", 2)

TABLE_4 = ThesisTable(
    4, "Summary of notable models found for Problem B_S",
    f"thesis 4.2.1, Table 4 ({THESIS_TEXT} line 908)",
    ("layers", "mean_err", "neurons", "shape_class", "note"),
    (
        _model("elu-8,silu-8", 6.42e-3, 16, "rectangle", "Smallest model < 0.01", SMALLEST_001),
        _model("tanh-32,elu-8,silu-8", 8.94e-4, 48, "funnel", "Smallest model < 0.001", SMALLEST_0001),
        _model("silu-8,tanh-32,silu-8", 5.06e-4, 48, "bowtie", "Best model < 64", NotableRule("best_within", 64)),
        _model("silu-32,tanh-32,silu-32", 3.88e-4, 96, "rectangle", "Best model < 128",
               NotableRule("best_within", 128)),
        _model("tanh-32,silu-32", 9.62e-4, 64, "rectangle", "Best two-layer", BEST_TWO_LAYER),
        _model("silu-32,tanh-32,silu-32", 3.88e-4, 96, "rectangle", "Best model", BEST),
    ),
    ("DDNN, 1M Adam steps, batch 128; 'mean err' over the validation set (5,000 trajectories).",
     "The thesis labels (silu-8,tanh-32,silu-8) 'bowtie'; by its own definitions it is a diamond."))

TABLE_7 = ThesisTable(
    7, "Best, worst and average model mean error for the large and small time domains (Problem B_C)",
    f"thesis 4.2.2, Table 7 ({THESIS_TEXT} line 960)",
    ("window", "mean_err_mean", "mean_err_std", "best", "worst"),
    (
        {"window": 50.0, "mean_err_mean": 1.44e-2, "mean_err_std": 1.14e-2, "best": 4.94e-3, "worst": 8.27e-2},
        {"window": 5.0, "mean_err_mean": 2.96e-3, "mean_err_std": 1.93e-3, "best": 8.39e-4, "worst": 1.18e-1},
    ),
    ("Architectures: sequences of {silu-8, silu-32, silu-64, tanh-32, tanh-64, elu-8} with 2-4 layers.",
     "The small window's worst (1.18e-1) is printed as is; it may be a misprint of 1.18e-2."))

TABLE_8 = ThesisTable(
    8, "Selected models by mean error and neuron count for Problem B_C (small window t in [0, 5])",
    f"thesis 4.2.2, Table 8 ({THESIS_TEXT} line 975)",
    ("layers", "mean_err", "neurons", "shape_class", "note"),
    (
        _model("silu-8,elu-8", 9.90e-3, 16, "rectangle", "Smallest model < 0.01", SMALLEST_001),
        _model("sin-16,silu-16,sin-16", 1.85e-3, 48, "rectangle", "Smallest model < 0.002", SMALLEST_0002),
        _model("sin-16,tanh-32,sin-16", 1.06e-3, 64, "diamond", "Best model < 64", NotableRule("best_within", 64)),
        _model("sin-16,silu-8,elu-8", 2.75e-3, 32, "funnel", "Best model < 32", NotableRule("best_within", 32)),
        _model("tanh-32,tanh-32", 2.17e-3, 64, "rectangle", "Best two-layer model", BEST_TWO_LAYER),
        _model("sin-16,tanh-32,sin-16", 1.06e-3, 64, "diamond", "Best model", BEST),
    ),
    ("Pool: sequences of {silu-8, silu-16, tanh-32, sin-16, elu-8} with 2-3 layers, trained on t in [0, 5].",))

TABLE_9 = ThesisTable(
    9, "Notable iterator models for Problem B_C (error over the whole time domain, rollout to t = 50)",
    f"thesis 4.2.3, Table 9 ({THESIS_TEXT} line 1023)",
    ("layers", "mean_err", "neurons", "note"),
    (
        _model("tanh-8,silu-8", 2.78e-2, 16, None, "Smallest model < 0.1", SMALLEST_01),
        _model("elu-16,silu-8", 4.36e-3, 24, None, "Smallest model < 0.01", SMALLEST_001),
    ),
    ("Two-layer pool of {silu-16, tanh-16, silu-8, tanh-8, elu-8, elu-16} with the high-error data term; "
     "the text (4.2.3) gives 4.3e-3 for the best model and 0.162 for the worst, (elu-8, elu-16).",))

TABLE_10 = ThesisTable(
    10, "Selected models by mean error and neuron count for Problem C",
    f"thesis 4.3, Table 10 ({THESIS_TEXT} line 1054)",
    ("layers", "mean_err", "neurons", "note"),
    (
        _model("elu-8,silu-16,tanh-8", 9.08e-3, 32, None, "Smallest model < 0.01", SMALLEST_001),
        _model("elu-8,tanh-8", 2.80e-2, 16, None, "Smallest model < 0.1", SMALLEST_01),
        _model("elu-8,silu-16,tanh-8", 9.08e-3, 32, None, "Best model (neuron count less than 32)",
               NotableRule("best_within", 32)),
        _model("elu-16,tanh-16,sin-16", 5.42e-3, 48, None, "Overall best model", BEST),
    ),
    ("Grid: sequences of {silu-8, silu-16, sin-8, tanh-8, tanh-16, sin-16, elu-8, elu-16} with 2-3 layers, "
     "with the high-error data term.",))


def _a(layers: str, mean_err: float, max_err: float, pinn: bool) -> dict[str, Any]:
    return {"layers": layers, "mean_err": mean_err, "max_err": max_err, "pinn": pinn}


TABLE_14 = ThesisTable(
    14, "Problem A, scarce training set (10 points), after 2 million iterations",
    f"thesis 6 (supplementary), Table 14 ({THESIS_TEXT} line 1202)",
    ("layers", "mean_err", "max_err", "pinn"),
    (
        _a("silu-16,silu-16", 3.17e-4, 1.63e-3, True), _a("silu-16,silu-16", 2.07e-2, 3.87e-1, False),
        _a("silu-16,silu-16,silu-16", 4.38e-4, 2.80e-3, True), _a("silu-16,silu-16,silu-16", 1.92e-2, 3.45e-1, False),
        _a("silu-16,silu-16,silu-32", 2.37e-4, 1.88e-3, True), _a("silu-16,silu-16,silu-32", 2.25e-2, 3.55e-1, False),
        _a("silu-16,silu-16,tanh-8", 1.79e-4, 2.55e-3, True), _a("silu-16,silu-16,tanh-8", 1.93e-2, 4.11e-1, False),
        _a("silu-16,silu-32", 7.65e-4, 1.36e-2, True), _a("silu-16,silu-32", 1.66e-2, 3.68e-1, False),
        _a("silu-16,silu-32,silu-16", 3.93e-4, 8.45e-3, True), _a("silu-16,silu-32,silu-16", 8.02e-2, 1.78e0, False),
        _a("silu-16,silu-32,tanh-8", 1.66e-4, 2.12e-3, True), _a("silu-16,silu-32,tanh-8", 2.58e-2, 5.78e-1, False),
        _a("silu-32,silu-16", 1.31e-4, 2.06e-3, True), _a("silu-32,silu-16", 1.97e-2, 4.15e-1, False),
        _a("silu-32,silu-16,silu-16", 1.10e-3, 5.40e-3, True), _a("silu-32,silu-16,silu-16", 2.99e-2, 4.29e-1, False),
        _a("silu-32,silu-16,silu-32", 2.03e-4, 1.15e-3, True), _a("silu-32,silu-16,silu-32", 4.37e-2, 9.74e-1, False),
        _a("silu-32,silu-16,tanh-8", 1.08e-4, 1.66e-3, True), _a("silu-32,silu-16,tanh-8", 1.49e-2, 3.73e-1, False),
        _a("silu-32,silu-32", 9.57e-4, 4.20e-2, True), _a("silu-32,silu-32", 3.37e-2, 5.96e-1, False),
        _a("silu-32,silu-32,silu-16", 1.50e-3, 2.64e-2, True), _a("silu-32,silu-32,silu-16", 1.77e-2, 4.09e-1, False),
        _a("silu-32,silu-32,silu-32", 1.47e-4, 2.01e-3, True), _a("silu-32,silu-32,silu-32", 2.24e-2, 4.00e-1, False),
        _a("silu-32,silu-32,tanh-8", 1.17e-4, 1.54e-3, True), _a("silu-32,silu-32,tanh-8", 2.30e-2, 4.83e-1, False),
    ),
    ("PINN vs DDNN on the same architecture; validation on the whole trajectory t in [0, 20].",
     "Figure 17: t-test between the PINN and DDNN groups, t = 7.42."))

TABLE_15 = ThesisTable(
    15, "Problem A, complete training set (1000 points), after 2 million iterations",
    f"thesis 6 (supplementary), Table 15 ({THESIS_TEXT} line 1238)",
    ("layers", "mean_err", "max_err", "pinn"),
    (
        _a("silu-16,silu-16", 2.39e-4, 1.64e-3, True), _a("silu-16,silu-16", 9.27e-4, 8.34e-3, False),
        _a("silu-16,silu-32", 2.47e-4, 4.24e-3, False), _a("silu-16,silu-32", 1.02e-3, 7.23e-3, True),
        _a("silu-32,silu-16", 2.74e-4, 5.23e-3, False), _a("silu-32,silu-16", 4.97e-4, 3.27e-3, True),
        _a("silu-32,silu-32", 1.66e-4, 1.36e-3, True), _a("silu-32,silu-32", 3.63e-4, 1.16e-2, False),
        _a("silu-32,tanh-8", 3.66e-4, 2.72e-3, True), _a("silu-32,tanh-8", 1.04e-3, 7.71e-3, False),
        _a("tanh-8,silu-16", 3.39e-4, 4.92e-3, False), _a("tanh-8,silu-16", 3.70e-4, 2.05e-3, True),
        _a("tanh-8,silu-32", 3.64e-4, 5.52e-3, False), _a("tanh-8,silu-32", 5.05e-4, 7.50e-3, True),
    ),
    ("Figure 21: t-test between the PINN and DDNN groups, t = 0.33, p = 0.74.",))


def _anova(source: str, coef: float | None, sum_sq: float | None, f: float | None, p: float | None,
           mean_sq: float | None = None) -> dict[str, Any]:
    return {"source": source, "coef": coef, "sum_sq": sum_sq, "mean_sq": mean_sq, "F": f, "p": p}


#: Eq. 4.1 on the 20-model batch study (Tables 2-3): sources as the thesis names them.
TABLE_2 = ThesisTable(
    2, "ANOVA: mean error ~ C(iccs) * bs + C(pin) * bs (Problem B_S batch study, eq. 4.1)",
    f"thesis 4.2.1, Table 2 ({THESIS_TEXT} line 868)",
    ("source", "coef", "sum_sq", "F", "p"),
    (
        _anova("C(iccs)", 3.97e-4, 7.61e-7, 7.68, 1.50e-2),
        _anova("C(pin)", 5.76e-4, 8.49e-7, 8.57, 1.10e-2),
        _anova("bs", -1.59e-7, 7.75e-7, 7.81, 1.43e-2),
        _anova("C(iccs):bs", -1.61e-8, 4.20e-10, 0.004, 9.49e-1),
        _anova("bs:C(pin)", -3.60e-7, 2.08e-7, 2.10, 1.69e-1),
        _anova("Residual", None, 1.39e-6, None, None),
    ))

TABLE_3 = ThesisTable(
    3, "ANOVA: iteration time ~ C(iccs) * bs + C(pin) * bs (Problem B_S batch study, eq. 4.1)",
    f"thesis 4.2.1, Table 3 ({THESIS_TEXT} line 878)",
    ("source", "coef", "sum_sq", "F", "p"),
    (
        _anova("C(iccs)", 5.25e-3, 1.01e-4, 79.70, 3.74e-7),
        _anova("C(pin)", 6.60e-3, 2.64e-4, 209.00, 8.36e-10),
        _anova("bs", -3.90e-7, 1.47e-6, 1.16, 2.99e-1),
        _anova("C(iccs):bs", -1.66e-6, 4.46e-6, 3.52, 8.17e-2),
        _anova("bs:C(pin)", 1.49e-6, 3.56e-6, 2.81, 1.16e-1),
        _anova("Residual", None, 1.77e-5, None, None),
    ))

TABLE_5 = ThesisTable(
    5, "ANOVA: mean error ~ C(class) * neuron, models with < 120 neurons (Problem B_S, eq. 4.2)",
    f"thesis 4.2.1, Table 5 ({THESIS_TEXT} line 918)",
    ("source", "sum_sq", "mean_sq", "F", "p"),
    (
        _anova("C(class)", None, 5.87e-5, 19.6, 2.80e-13, mean_sq=1.47e-5),
        _anova("neuron", None, 3.20e-5, 42.8, 6.88e-10, mean_sq=3.20e-5),
        _anova("C(class):neuron", None, 2.73e-5, 9.14, 1.05e-6, mean_sq=6.83e-6),
    ),
    ("Text of 4.2.1: between-class variance 1.46e-5 vs within-class 1.06e-6 for < 120 neurons.",))

TABLE_6 = ThesisTable(
    6, "ANOVA: mean error ~ C(class) * neuron, models with >= 120 neurons (Problem B_S, eq. 4.2)",
    f"thesis 4.2.1, Table 6 ({THESIS_TEXT} line 925)",
    ("source", "sum_sq", "mean_sq", "F", "p"),
    (
        _anova("C(class)", None, 1.27e-6, 4.00, 0.0057, mean_sq=3.18e-7),
        _anova("neuron", None, 2.74e-6, 34.5, 1.49e-7, mean_sq=2.74e-6),
        _anova("C(class):neuron", None, 6.76e-6, 21.3, 2.30e-11, mean_sq=1.69e-6),
    ),
    ("Text of 4.2.1: between-class variance 3.17e-7 vs within-class 2.08e-7 for >= 120 neurons.",))

TABLE_12 = ThesisTable(
    12, "ANOVA: inference time ~ layers * neuron (TensorRT, untrained SiLU networks, eq. 4.3)",
    f"thesis 4.4, Table 12 ({THESIS_TEXT} line 1090)",
    ("source", "coef", "sum_sq", "F", "p"),
    (
        _anova("layers", 0.0128, 3.14e-2, 171.0, 7.22e-36),
        _anova("neuron", 0.0015, 1.29e1, 70300.0, 0.0),
        _anova("layers:neuron", None, 1.72e-3, 9.33, 2.32e-3),
        _anova("Residual", None, 1.66e-1, None, None),
    ),
    ("The printed coefficient of layers:neuron is '> 1e-5'. 'layers' has one coefficient and one degree of "
     "freedom (F 171 with p 7e-36 fits 1 numerator df), so it entered as a number, not C(layers).",))

TABLE_13 = ThesisTable(
    13, "ANOVA: speed-up of TensorRT over PyTorch CUDA ~ layers * neuron (eq. 4.3 with speed-up)",
    f"thesis 4.4, Table 13 ({THESIS_TEXT} line 1103)",
    ("source", "coef", "sum_sq", "F", "p"),
    (
        _anova("layers", -0.0122, 1.91e0, 129.0, 5.85e-28),
        _anova("neuron", 0.0043, 4.80e1, 3230.0, 9.23e-301),
        _anova("layers:neuron", None, 6.15e-1, 41.4, 2.01e-10),
        _anova("Residual", None, 1.35e1, None, None),
    ),
    ("The Residual row prints 905 in the coefficient column: its degrees of freedom, so 905 + 4 = 909 "
     "networks entered the fit (of the 3905 permutations of 5 widths x 1-5 layers).",))

#: Other figures quoted in the text.
PROBLEM_A_T_TESTS = {
    "scarce": {"t": 7.42, "p": None, "source": f"thesis 4.1, Figure 17 ({THESIS_TEXT} line 792)"},
    "complete": {"t": 0.33, "p": 0.74, "source": f"thesis 4.1, Figure 21 ({THESIS_TEXT} line 818)"},
}
SIZE_SPLIT_VARIANCES = {
    "small": {"between": 1.46e-5, "within": 1.06e-6},
    "large": {"between": 3.17e-7, "within": 2.08e-7},
    "split_neurons": 120,
    "source": f"thesis 4.2.1 ({THESIS_TEXT} line 900)",
}
#: 4.4: networks in the inference ANOVA (Table 13's residual df 905 + 4 parameters).
INFERENCE_SWEEP_NETWORKS = 909

TABLES: dict[int, ThesisTable] = {t.number: t for t in (TABLE_2, TABLE_3, TABLE_4, TABLE_5, TABLE_6, TABLE_7, TABLE_8,
                                                        TABLE_9, TABLE_10, TABLE_12, TABLE_13, TABLE_14, TABLE_15)}
