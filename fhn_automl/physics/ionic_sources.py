"""Where N-state cell models come from: built-in names and users' model files, resolved once at the edge.

:func:`resolve_cell_model` turns a ``--cell-model`` value into an :class:`IonicModel`:

- ``fhn``: the FitzHugh-Nagumo model of the thesis, its equations taken from
  :meth:`FitzHughNagumo.rhs` itself (called with SymPy symbols), so the two can never disagree.
- ``tp06_epi``, ``tp06_m``: ten Tusscher & Panfilov 2006, human ventricular epicardial and
  mid-myocardial cells, from the MIT-licensed ``finitewave-model-ten-tusscher-panfilov-2006`` package;
  ``mitchell_schaeffer`` from ``finitewave-model-mitchell-schaeffer``. Nothing is hand-typed: the
  package's own step function ``ionic_step(dt, state..., params...)`` is called with SymPy symbols
  (its ``exp``/``log``/``sqrt``/``calc_where`` rebound to SymPy's in a private copy of the module), and
  every state's derivative is read off that step as ``d(new state)/d(dt)`` at ``dt = 0``: exact for its
  Euler updates, its Rush-Larsen gates and its analytic calcium-buffering updates alike. The endocardial
  TP06 variant is not built in: the package carries only the epicardial ``s`` gate, and the endocardial
  cell differs in that gate's equations, not only in a parameter. Load it from a model file instead.
- a path ending in ``.json``: a bundle written by :func:`save_model_bundle` (the resolved model with its
  equations as SymPy ``srepr`` text): needs only SymPy to load, so a GPU host without Myokit or the
  finitewave packages runs any model resolved elsewhere.
- a path ending in ``.mmt`` (Myokit) or ``.cellml`` / ``.xml`` (CellML 1.0/1.1/2.0): parsed by Myokit
  (optional dependency, offline). Myokit's ``pace`` binding becomes the stimulus input (its level:
  1 during a pulse), the file's ``[[protocol]]`` (if any) the stimulus protocol, every literal constant
  a parameter, and the state labelled ``membrane_potential`` (else Myokit's guess) the voltage. A CellML
  file's stimulus hard-coded as a periodic function of time becomes pace + protocol through
  ``myokit.lib.guess.remove_embedded_protocol``; other uses of time are refused (``ModelFileError``).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import math
from pathlib import Path
from typing import Any

from fhn_automl._atomic import write_text
from fhn_automl.physics.cell_models import FitzHughNagumo
from fhn_automl.physics.ionic_model import (STIMULUS_SYMBOL, IonicModel, ModelFileError, Parameter,
                                            StateVariable, StimulusProtocol, UnknownCellModelError,
                                            default_range)

__all__ = ["BUILT_IN_CELL_MODELS", "MODEL_FILE_SUFFIXES", "load_model_bundle", "load_model_file", "resolve_cell_model",
           "save_model_bundle"]

MODEL_FILE_SUFFIXES = (".mmt", ".cellml", ".xml", ".json")
#: bumped when the JSON bundle's layout changes
BUNDLE_FORMAT_VERSION = 1

#: TP06 units (the paper's): the package's docstrings give them, its code carries none
_TP06_UNITS = {"u": "mV", "cai": "mM", "casr": "mM", "cass": "mM", "nai": "mM", "ki": "mM"}
#: the conductances and fluxes that differ between cells and patients: what datasets vary by default
_TP06_VARIED = ("gNa", "gK1", "gKr", "gKs", "gto", "gCaL", "pNaK", "kNaCa")


def _fhn() -> IonicModel:
    import sympy

    cell = FitzHughNagumo()
    u, w, current = sympy.symbols(f"u w {STIMULUS_SYMBOL}")
    names = ("k", "alpha", "eps", "beta", "gamma")
    symbolic = FitzHughNagumo(**{name: sympy.Symbol(name) for name in names})
    du, dw = symbolic.rhs(u, w, current)
    return IonicModel(
        name="fhn", description="FitzHugh-Nagumo, the thesis' variant (cell_models.FitzHughNagumo)",
        states=(StateVariable("u", "1", 0.0), StateVariable("w", "1", 0.0)),
        parameters=tuple(Parameter(n, "1", getattr(cell, n), default_range(getattr(cell, n))) for n in names),
        # FHN's applied current I is constant: one pulse that never ends; the problems set its level
        stimulus=StimulusProtocol(amplitude=0.0, duration=math.inf, period=0.0),
        voltage="u", derivatives=(du, dw), source="fhn_automl.physics.cell_models.FitzHughNagumo",
        time_unit="1", default_dt=0.01, varied=("alpha", "eps"))


def _symbolic_copy(module_name: str) -> Any:
    """A private copy of a finitewave ``ops`` module whose math functions build SymPy expressions."""
    import sympy

    try:
        spec = importlib.util.find_spec(module_name)
    except ModuleNotFoundError:  # the package above the module is absent
        spec = None
    if spec is None:
        raise ModelSourceMissingError(
            f"the built-in model needs the package that provides {module_name!r}: pip install "
            f"finitewave-model-{module_name.split('.')[0].replace('_', '-')}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.exp, module.log, module.sqrt = sympy.exp, sympy.log, sympy.sqrt
    module.calc_where = lambda condition, x, y: sympy.Piecewise((x, condition), (y, True))
    return module


def _from_finitewave(module_name: str, distribution: str, *, name: str, voltage: str,
                     overrides: dict[str, float], units: dict[str, str], stimulus: StimulusProtocol,
                     stimulus_sign: float, varied: tuple[str, ...], default_dt: float,
                     description: str, functions: dict[str, Any] | None = None) -> IonicModel:
    """Derivatives from the package's ``ionic_step``; the stimulus enters ``dV/dt`` as
    ``stimulus_sign * i_stim`` (the package's step leaves the stimulus to the tissue code). ``functions``
    replace module-level rate functions of the package (by name) before the step is traced."""
    import sympy

    ops = _symbolic_copy(module_name)
    for function_name, replacement in (functions or {}).items():
        if not callable(getattr(ops, function_name, None)):
            raise ModelFileError(f"{distribution} has no function {function_name!r} to replace")
        setattr(ops, function_name, replacement)
    states, parameters = ops.get_variables(), {**ops.get_parameters(), **overrides}
    symbols = {key: sympy.Symbol(key) for key in (*states, *parameters)}
    dt = sympy.Symbol("dt")
    arguments = {"dt": dt, **symbols}
    step = ops.ionic_step(*(arguments[p] for p in inspect.signature(ops.ionic_step).parameters))
    derivatives = []
    for key, new in zip(states, step):
        # the step returns the voltage's derivative itself, every other state's updated value
        derivative = new if key == voltage else sympy.diff(new, dt).subs(dt, 0)
        if key == voltage:
            derivative = derivative + stimulus_sign * sympy.Symbol(STIMULUS_SYMBOL)
        derivatives.append(derivative)
    version = importlib.metadata.version(distribution)
    return IonicModel(
        name=name, description=description,
        states=tuple(StateVariable(k, units.get(k, "1"), float(v)) for k, v in states.items()),
        parameters=tuple(Parameter(k, "", float(v), default_range(float(v))) for k, v in parameters.items()),
        stimulus=stimulus, voltage=voltage, derivatives=tuple(derivatives),
        source=f"{distribution} {version} ({module_name}.ionic_step)", varied=varied, default_dt=default_dt)


def _endo_s_inf(u: Any) -> Any:
    import sympy

    return 1.0 / (1.0 + sympy.exp((u + 28.0) / 5.0))


def _endo_tau_s(u: Any) -> Any:
    import sympy

    return 1000.0 * sympy.exp(-(u + 67.0) ** 2 / 1000.0) + 8.0


#: the endocardial Ito inactivation gate of ten Tusscher et al. 2004 (kept in the 2006 model)
_TP06_ENDO_S_GATE = {"calc_s_inf": _endo_s_inf, "calc_tau_s": _endo_tau_s}

_TP06_STIMULUS = StimulusProtocol(amplitude=-52.0, duration=1.0, period=1000.0, start=10.0)

_BUILDERS = {
    "fhn": _fhn,
    "tp06_epi": lambda: _from_finitewave(
        "ten_tusscher_panfilov_2006.ops", "finitewave-model-ten-tusscher-panfilov-2006", name="tp06_epi",
        voltage="u", overrides={}, units=_TP06_UNITS, stimulus=_TP06_STIMULUS, stimulus_sign=-1.0,
        varied=_TP06_VARIED, default_dt=0.02,
        description="ten Tusscher & Panfilov 2006, human ventricular epicardial cell (19 states)"),
    "tp06_m": lambda: _from_finitewave(
        "ten_tusscher_panfilov_2006.ops", "finitewave-model-ten-tusscher-panfilov-2006", name="tp06_m",
        voltage="u", overrides={"gKs": 0.098}, units=_TP06_UNITS, stimulus=_TP06_STIMULUS, stimulus_sign=-1.0,
        varied=_TP06_VARIED, default_dt=0.02,
        # the 2006 paper's M cell: epicardial but for a quarter of the slow delayed rectifier (gKs)
        description="ten Tusscher & Panfilov 2006, mid-myocardial cell (gKs = 0.098 nS/pF)"),
    "tp06_endo": lambda: _from_finitewave(
        "ten_tusscher_panfilov_2006.ops", "finitewave-model-ten-tusscher-panfilov-2006", name="tp06_endo",
        voltage="u", overrides={"gto": 0.073}, units=_TP06_UNITS, stimulus=_TP06_STIMULUS, stimulus_sign=-1.0,
        varied=_TP06_VARIED, default_dt=0.02, functions=_TP06_ENDO_S_GATE,
        # the 2004/2006 papers' endocardial cell: a smaller transient outward current (Gto 0.073 nS/pF) whose
        # inactivation gate s is slower and shifted (the package implements the epicardial s gate only)
        description="ten Tusscher & Panfilov 2006, endocardial cell (gto = 0.073 nS/pF, endocardial s gate)"),
    "mitchell_schaeffer": lambda: _from_finitewave(
        "mitchell_schaeffer.ops", "finitewave-model-mitchell-schaeffer", name="mitchell_schaeffer",
        voltage="u", overrides={}, units={}, stimulus_sign=1.0,
        # dimensionless voltage; a 1 ms pulse of 0.2 / ms lifts u from rest past u_gate = 0.13
        stimulus=StimulusProtocol(amplitude=0.2, duration=1.0, period=1000.0, start=10.0),
        varied=("tau_in", "tau_out", "tau_open", "tau_close"), default_dt=0.05,
        description="Mitchell & Schaeffer 2003, two-current model (2 states)"),
}
BUILT_IN_CELL_MODELS = tuple(_BUILDERS)


#: the committed bundles of the built-in models (a source checkout only): what a built-in model resolves
#: to on a host without its source package (the lent GPU machines); tests/physics/test_ionic_models.py
#: fails when a bundle no longer equals the model built from its source
CHECKOUT_BUNDLES = Path(__file__).resolve().parents[2] / "benchmarks" / "models"


class ModelSourceMissingError(UnknownCellModelError):
    """A built-in model whose source package is not installed (and no committed bundle stands in)."""


@functools.lru_cache(maxsize=None)
def _built_in(name: str) -> IonicModel:
    try:
        return _BUILDERS[name]()
    except ModelSourceMissingError as missing:
        bundle = CHECKOUT_BUNDLES / f"{name}.json"
        if not bundle.is_file():
            raise
        model = load_model_bundle(bundle)
        if model.name != name:
            raise ModelFileError(f"{bundle} holds model {model.name!r}, not the built-in {name!r}") from missing
        return model


def resolve_cell_model(name_or_path: str | Path | IonicModel) -> IonicModel:
    """The cell model a name or model-file path stands for (an ``IonicModel`` passes through).

    Raises :class:`UnknownCellModelError` for a name that is neither built in nor an existing file with
    a model suffix, and :class:`ModelFileError` for a file that does not parse.
    """
    if isinstance(name_or_path, IonicModel):
        return name_or_path
    text = str(name_or_path)
    if text in _BUILDERS:
        return _built_in(text)
    path = Path(text)
    if path.suffix.lower() in MODEL_FILE_SUFFIXES:
        if not path.is_file():
            raise UnknownCellModelError(f"cell-model file {path} does not exist")
        return load_model_bundle(path) if path.suffix.lower() == ".json" else load_model_file(path)
    raise UnknownCellModelError(
        f"unknown cell model {text!r}: built in are {', '.join(BUILT_IN_CELL_MODELS)}; or give the path of "
        f"a model file ({', '.join(MODEL_FILE_SUFFIXES)})")


# ------------------------------------------------------------------------------- model files (Myokit)


def load_model_file(path: str | Path) -> IonicModel:
    """An ``IonicModel`` from a Myokit ``.mmt`` or a CellML file (needs ``pip install myokit``)."""
    path = Path(path)
    try:
        import myokit
        import myokit.formats
    except ImportError:
        raise ModelFileError(f"reading {path} needs Myokit: pip install 'myokit>=1.35'") from None
    protocol = None
    try:
        if path.suffix.lower() == ".mmt":
            model, protocol, _ = myokit.load(str(path))
            if model is None:
                raise ModelFileError(f"{path}: the file has no [[model]] section")
        else:
            model = myokit.formats.importer("cellml").model(str(path))
        if model.binding("pace") is None:
            # CellML has no pacing binding: files hard-code the stimulus as a periodic function of
            # time. Myokit's guess module recognises that pattern and turns it into pace + protocol.
            import myokit.lib.guess

            protocol = myokit.lib.guess.remove_embedded_protocol(model) or protocol
        model.validate()
    except ModelFileError:
        raise
    except Exception as error:  # Myokit raises many parse / import / validation types
        raise ModelFileError(f"{path} does not parse as a cell model: {type(error).__name__}: {error}") from None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return _from_myokit(model, protocol, name=path.stem, source=f"{path} (sha256 {digest}, myokit {myokit.__version__})")


def _from_myokit(model: Any, protocol: Any, *, name: str, source: str) -> IonicModel:
    import myokit
    import myokit.formats.sympy
    import sympy

    def qualified(lhs: Any) -> str:
        if isinstance(lhs, myokit.Derivative):
            raise ModelFileError(f"{source}: an equation uses the derivative {lhs}; not supported")
        return lhs.var().qname()

    to_sympy = myokit.formats.sympy.SymPyExpressionWriter()
    to_sympy.set_lhs_function(qualified)

    states = list(model.states())
    pace = model.binding("pace")
    time = model.time()
    voltage = model.label("membrane_potential")
    if voltage is None:
        import myokit.lib.guess

        voltage = myokit.lib.guess.membrane_potential(model)
    if voltage is None:
        raise ModelFileError(f"{source}: no state is labelled membrane_potential or named V")
    literal_parameters = [v for v in model.variables(deep=True, const=True)
                          if v.is_literal() and v.binding() is None and v is not pace]
    symbol = {v: sympy.Symbol(v.qname()) for v in model.variables(deep=True)}
    keep = {v.qname(): sympy.Symbol(v.qname()) for v in (*states, *literal_parameters)}
    if pace is not None:
        keep[pace.qname()] = sympy.Symbol(STIMULUS_SYMBOL)
    flattened: dict[str, Any] = {}

    def flat(variable: Any) -> Any:
        qname = variable.qname()
        if qname in keep:
            return keep[qname]
        if variable is time:
            raise ModelFileError(f"{source}: the equations use time ({qname}) outside the pacing protocol; "
                                 "only autonomous models with a pace-bound stimulus are supported")
        if qname not in flattened:
            expression = to_sympy.ex(variable.rhs())
            flattened[qname] = expression.xreplace(
                {symbol[ref.var()]: flat(ref.var()) for ref in variable.rhs().references()})
        return flattened[qname]

    derivatives = []
    for state in states:
        expression = to_sympy.ex(state.rhs())
        derivatives.append(expression.xreplace({symbol[r.var()]: flat(r.var()) for r in state.rhs().references()}))
    stimulus = StimulusProtocol(amplitude=1.0, duration=1.0, period=1000.0, start=0.0)
    if protocol is not None and len(protocol.events()):
        event = protocol.events()[0]
        stimulus = StimulusProtocol(amplitude=float(event.level()), duration=float(event.duration()),
                                    period=float(event.period()), start=float(event.start()))
    return IonicModel(
        name=name, description=str(model.meta.get("name", model.name())),
        states=tuple(StateVariable(s.qname(), str(s.unit() or ""), float(s.initial_value(True)))
                     for s in states),
        parameters=tuple(Parameter(v.qname(), str(v.unit() or ""), float(v.eval()), default_range(float(v.eval())))
                         for v in literal_parameters),
        stimulus=stimulus, voltage=voltage.qname(), derivatives=tuple(derivatives), source=source,
        time_unit=str(time.unit() or ""))


# --------------------------------------------------------------------------------------- JSON bundles


def save_model_bundle(model: IonicModel, path: str | Path) -> Path:
    """Write ``model`` as a JSON bundle that :func:`resolve_cell_model` reads back with SymPy alone."""
    import json

    import sympy

    record = {
        "format": BUNDLE_FORMAT_VERSION, "name": model.name, "description": model.description,
        "source": model.source, "voltage": model.voltage, "time_unit": model.time_unit,
        "default_dt": model.default_dt, "varied": list(model.varied),
        "states": [[s.name, s.unit, s.default] for s in model.states],
        "parameters": [[p.name, p.unit, p.default, list(p.range)] for p in model.parameters],
        "stimulus": [model.stimulus.amplitude, model.stimulus.duration, model.stimulus.period, model.stimulus.start],
        "derivatives": [sympy.srepr(d) for d in model.derivatives],
    }
    path = Path(path)
    write_text(path, json.dumps(record, indent=1) + "\n")
    return path


def load_model_bundle(path: str | Path) -> IonicModel:
    """The model of a JSON bundle (:func:`save_model_bundle`); ``ModelFileError`` if it is not one."""
    import json

    import sympy

    path = Path(path)
    try:
        record = json.loads(path.read_text())
        if record.get("format") != BUNDLE_FORMAT_VERSION:
            raise ValueError(f"bundle format {record.get('format')!r}, expected {BUNDLE_FORMAT_VERSION}")
        # srepr text is evaluated with SymPy's own constructors only (no builtins)
        namespace = {name: getattr(sympy, name) for name in dir(sympy) if not name.startswith("_")}
        from sympy.functions.elementary.piecewise import ExprCondPair

        namespace.update(ExprCondPair=ExprCondPair, __builtins__={})
        derivatives = tuple(eval(text, namespace) for text in record["derivatives"])  # noqa: S307
        return IonicModel(
            name=record["name"], description=record["description"], source=f"{record['source']} via bundle {path}",
            states=tuple(StateVariable(n, u, float(d)) for n, u, d in record["states"]),
            parameters=tuple(Parameter(n, u, float(d), (float(r[0]), float(r[1]))) for n, u, d, r in record["parameters"]),
            stimulus=StimulusProtocol(*(float(x) for x in record["stimulus"])), voltage=record["voltage"],
            derivatives=derivatives, time_unit=record["time_unit"], default_dt=float(record["default_dt"]),
            varied=tuple(record["varied"]))
    except ModelFileError:
        raise
    except Exception as error:  # JSON, key, SymPy and type errors alike: the file is not a bundle
        raise ModelFileError(f"{path} is not a cell-model bundle: {type(error).__name__}: {error}") from None
