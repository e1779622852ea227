"""bench's report rows are told apart by name when two models share their layers (a DDNN and a PINN)."""
from pathlib import Path
from types import SimpleNamespace

from fhn_automl.bench import _distinct_names


def _model(kind: str) -> SimpleNamespace:
    return SimpleNamespace(spec=SimpleNamespace(kind=kind))


def test_models_of_the_same_layers_get_their_kind_and_folder():
    ddnn, pinn, other = _model("ddnn"), _model("pinn"), _model("ddnn")
    models = [("tanh-64,tanh-64", ddnn, False), ("tanh-64,tanh-64", pinn, False), ("silu-8", other, False)]
    folders = [Path("runs/ms_ddnn/model"), Path("runs/ms_pinn/model"), Path("runs/small/model")]
    named = _distinct_names(models, folders)
    assert [name for name, _, _ in named] == ["tanh-64,tanh-64 (ddnn, runs/ms_ddnn/model)",
                                              "tanh-64,tanh-64 (pinn, runs/ms_pinn/model)", "silu-8"]
    assert [model for _, model, _ in named] == [ddnn, pinn, other]
