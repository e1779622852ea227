"""The code of every trial's MLflow model (MLflow "models from code"): it is copied into the model,
never imported by fhn_automl, and loads with torch, pandas and mlflow alone.

Why a pyfunc model of our own rather than MLflow's pytorch flavor: that flavor returns the network's
tensor as a DataFrame with columns ``0``, ``1``, so ``mlflow models serve`` answered ``{"0": ...,
"1": ...}`` although the signature says ``u``, ``w``. This model returns the columns by name (the
spec's outputs, passed as the model config), in the order of the signature's outputs.

mlflow is imported at the top because MLflow executes this file to build the model; the package's
own modules import it lazily (``fhn_automl.search.tracking.log_mlflow_model``).
"""

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import set_model


class SurrogateModel(mlflow.pyfunc.PythonModel):
    """The TorchScript network on raw float32 inputs in the spec's order -> named outputs."""

    def load_context(self, context) -> None:
        import torch

        self.net = torch.jit.load(context.artifacts["model_ts"], map_location="cpu").eval()
        self.inputs = list(context.model_config["inputs"])
        self.outputs = list(context.model_config["outputs"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        import torch

        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input,
                                                                                       columns=self.inputs)
        x = torch.from_numpy(np.ascontiguousarray(frame[self.inputs].to_numpy(dtype=np.float32)))
        with torch.no_grad():
            y = self.net(x).numpy()
        return pd.DataFrame(y, columns=self.outputs, index=frame.index)


set_model(SurrogateModel())
