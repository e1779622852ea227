"""Code generation for N-state cell models: one SymPy definition, three backends.

Every backend's code is printed from the same common-subexpression-eliminated list of assignments
(``sympy.cse``), with the same parenthesisation and the same literals, so the NumPy reference, the
numba twin and the CUDA kernel do the same operations in the same order. They can still differ in the
last bit where they call different ``exp`` / ``log`` implementations (NumPy's SIMD ones, glibc's,
CUDA's), which is why the tests compare them with a tolerance of a few ulps rather than bitwise.

Variables are renamed to ``y<i>`` (states), ``p<i>`` (parameters), ``i_stim`` and ``t<k>`` (common
subexpressions), so model names from any source (``membrane.V``, ``f2``) never clash with the
generated code. A small printer of our own, not SymPy's code printers: those differ per language in
how they parenthesise and write literals, which would break the same-operations guarantee above.
"""

from __future__ import annotations

from typing import Any

#: the symbol the equations use for the stimulus current (ionic_model re-exports it)
STIMULUS_SYMBOL = "i_stim"

#: math functions the printer knows, by SymPy name: (array-module name, scalar Python name, C name)
_FUNCTIONS = {
    "exp": ("exp", "math.exp", "exp"), "log": ("log", "math.log", "log"), "sqrt": ("sqrt", "math.sqrt", "sqrt"),
    "Abs": ("abs", "abs", "fabs"), "tanh": ("tanh", "math.tanh", "tanh"), "sin": ("sin", "math.sin", "sin"),
    "cos": ("cos", "math.cos", "cos"), "tan": ("tan", "math.tan", "tan"), "atan": ("arctan", "math.atan", "atan"),
    "sinh": ("sinh", "math.sinh", "sinh"), "cosh": ("cosh", "math.cosh", "cosh"),
    "floor": ("floor", "math.floor", "floor"), "ceiling": ("ceil", "math.ceil", "ceil"),
}


class UnsupportedExpressionError(ValueError):
    """The model uses an operation the code generator cannot write for every backend."""


class _Printer:
    """Writes a SymPy expression in one of three dialects: ``xp`` (array module), ``scalar`` (Python
    for numba), ``c`` (CUDA C++ with the template type ``T``)."""

    def __init__(self, dialect: str, names: dict[Any, str]) -> None:
        self.dialect = dialect
        self.names = names

    def literal(self, value: float) -> str:
        text = repr(float(value))
        if text in ("inf", "-inf", "nan"):
            raise UnsupportedExpressionError(f"non-finite constant {text} in the model")
        return f"T({text})" if self.dialect == "c" else text

    def __call__(self, e: Any) -> str:
        import sympy

        if e in self.names:
            return self.names[e]
        if isinstance(e, sympy.Symbol):
            raise UnsupportedExpressionError(f"free symbol {e} is neither a state, a parameter nor i_stim")
        if e.is_Number or e in (sympy.pi, sympy.E):
            return self.literal(float(e))
        if isinstance(e, sympy.Add):
            return "(" + " + ".join(self(a) for a in e.args) + ")"
        if isinstance(e, sympy.Mul):
            coefficient, rest = e.as_coeff_Mul()
            if coefficient == -1:
                return f"(-{self(rest)})"
            return "(" + "*".join(self(a) for a in e.args) + ")"
        if isinstance(e, sympy.Pow):
            return self.power(e.base, e.exp)
        if isinstance(e, sympy.Piecewise):
            return self.piecewise(list(e.args))
        if isinstance(e, sympy.Function) and type(e).__name__ in _FUNCTIONS:
            xp_name, scalar_name, c_name = _FUNCTIONS[type(e).__name__]
            inner = ", ".join(self(a) for a in e.args)
            name = {"xp": f"xp.{xp_name}", "scalar": scalar_name, "c": c_name}[self.dialect]
            return f"{name}({inner})"
        if isinstance(e, (sympy.Max, sympy.Min)):
            pick = {"xp": ("xp.maximum", "xp.minimum"), "scalar": ("max", "min"), "c": ("fmax", "fmin")}
            name = pick[self.dialect][0 if isinstance(e, sympy.Max) else 1]
            text = self(e.args[0])
            for arg in e.args[1:]:
                text = f"{name}({text}, {self(arg)})"
            return text
        if isinstance(e, sympy.core.relational.Relational):
            return f"({self(e.lhs)} {e.rel_op} {self(e.rhs)})"
        if isinstance(e, (sympy.And, sympy.Or)):
            joint = {"xp": (" & ", " | "), "scalar": (" and ", " or "), "c": (" && ", " || ")}
            sep = joint[self.dialect][0 if isinstance(e, sympy.And) else 1]
            return "(" + sep.join(self(a) for a in e.args) + ")"
        if isinstance(e, sympy.Not):
            return {"xp": f"(~{self(e.args[0])})", "scalar": f"(not {self(e.args[0])})",
                    "c": f"(!{self(e.args[0])})"}[self.dialect]
        if e is sympy.true:
            return {"xp": "True", "scalar": "True", "c": "true"}[self.dialect]
        if e is sympy.false:
            return {"xp": "False", "scalar": "False", "c": "false"}[self.dialect]
        raise UnsupportedExpressionError(f"cannot generate code for {type(e).__name__}: {e}")

    def power(self, base: Any, exponent: Any) -> str:
        import sympy

        b = self(base)
        if exponent.is_Integer and 1 <= abs(int(exponent)) <= 4:
            product = "(" + "*".join([b] * abs(int(exponent))) + ")"
            return product if exponent > 0 else f"({self.literal(1.0)}/{product})"
        if exponent == sympy.Rational(1, 2):
            return self._call("sqrt", b)
        if exponent == sympy.Rational(-1, 2):
            return f"({self.literal(1.0)}/{self._call('sqrt', b)})"
        e = self(exponent)
        return {"xp": f"({b}**{e})", "scalar": f"({b}**{e})", "c": f"pow({b}, {e})"}[self.dialect]

    def _call(self, function: str, argument: str) -> str:
        xp_name, scalar_name, c_name = _FUNCTIONS[function]
        return {"xp": f"xp.{xp_name}", "scalar": scalar_name, "c": c_name}[self.dialect] + f"({argument})"

    def piecewise(self, pieces: list[tuple[Any, Any]]) -> str:
        (value, condition), rest = pieces[0], pieces[1:]
        import sympy

        if condition is sympy.true or not rest:
            return self(value)
        otherwise = self.piecewise(rest)
        if self.dialect == "xp":
            return f"xp.where({self(condition)}, {self(value)}, {otherwise})"
        if self.dialect == "scalar":
            return f"({self(value)} if {self(condition)} else {otherwise})"
        return f"({self(condition)} ? {self(value)} : {otherwise})"


def _assignments(model: Any, with_gate_slopes: bool) -> tuple[list[tuple[Any, Any]], list[Any], dict]:
    """(common subexpressions, final expressions, symbol -> generated name)."""
    import sympy

    key = ("cse", with_gate_slopes)
    if key not in model._cache:
        names = {sympy.Symbol(s.name): f"y{i}" for i, s in enumerate(model.states)}
        names.update({sympy.Symbol(p.name): f"p{i}" for i, p in enumerate(model.parameters)})
        names[sympy.Symbol(STIMULUS_SYMBOL)] = "i_stim"
        expressions = list(model.derivatives) + (model._gate_slopes() if with_gate_slopes else [])
        temporaries = sympy.numbered_symbols("t")
        replacements, reduced = sympy.cse(expressions, symbols=temporaries, order="none")
        for symbol, _ in replacements:
            names[symbol] = str(symbol)
        model._cache[key] = (replacements, reduced, names)
    return model._cache[key]


def compile_xp_function(model: Any, *, with_gate_slopes: bool) -> Any:
    """``f(xp, y0..y{n-1}, i_stim, p0..p{m-1}) -> [dy/dt..., (gate slopes...)]`` over array module ``xp``."""
    replacements, reduced, names = _assignments(model, with_gate_slopes)
    printer = _Printer("xp", names)
    arguments = ", ".join(["xp", *(f"y{i}" for i in range(model.n_states)), "i_stim",
                           *(f"p{i}" for i in range(len(model.parameters)))])
    lines = [f"def generated({arguments}):"]
    lines += [f"    {names[symbol]} = {printer(value)}" for symbol, value in replacements]
    lines.append("    return [" + ", ".join(printer(e) for e in reduced) + "]")
    return exec_generated("\n".join(lines), "generated", f"<{model.name} xp rhs>", {})


def numba_step_source(model: Any) -> str:
    """Source of ``step(y, p, i_stim, dt, rush_larsen)``: one explicit step of one cell, in place on the
    1-D state array ``y``; ``rush_larsen`` picks exact steps for the gates (else forward Euler)."""
    replacements, reduced, names = _assignments(model, True)
    printer = _Printer("scalar", names)
    n = model.n_states
    gates = model._gate_indices
    lines = ["def step(y, p, i_stim, dt, rush_larsen):"]
    lines += [f"    y{i} = y[{i}]" for i in range(n)]
    lines += [f"    p{i} = p[{i}]" for i in range(len(model.parameters))]
    lines += [f"    {names[s]} = {printer(v)}" for s, v in replacements]
    lines += [f"    d{i} = {printer(e)}" for i, e in enumerate(reduced[:n])]
    lines.append("    if rush_larsen:")
    for k, i in enumerate(gates):
        lines.append(f"        b{i} = {printer(reduced[n + k])}")
        lines.append(f"        y[{i}] = y{i} + d{i} * (math.expm1(b{i} * dt) / b{i})")
    lines += [f"        y[{i}] = y{i} + dt * d{i}" for i in range(n) if i not in gates] or ["        pass"]
    lines.append("    else:")
    lines += [f"        y[{i}] = y{i} + dt * d{i}" for i in range(n)]
    return "\n".join(lines) + "\n"


def cuda_kernel_source(model: Any) -> str:
    """A CUDA C++ kernel stepping one cell per thread; entry points ``<prefix>_f32`` and ``<prefix>_f64``.

    Arguments: ``(initial[n_states*n], parameters[n_params*n], saved[n_saved*n_states*n], n, n_saved,
    save_every, dt, time0, stim_amplitude, stim_start, stim_duration, stim_period, rush_larsen)``; arrays state-major
    (``initial[k*n + i]``) so a warp's loads and stores coalesce; time and the stimulus test in double, with
    the formula of :meth:`StimulusProtocol.current`.
    """
    replacements, reduced, names = _assignments(model, True)
    printer = _Printer("c", names)
    n_states, n_params = model.n_states, len(model.parameters)
    gates = model._gate_indices
    prefix = model.cuda_entry_prefix
    body = []
    body += [f"        const T {names[s]} = {printer(v)};" for s, v in replacements]
    body += [f"        const T d{i} = {printer(e)};" for i, e in enumerate(reduced[:n_states])]
    body.append("        if (rush_larsen) {")
    for k, i in enumerate(gates):
        body.append(f"            const T b{i} = {printer(reduced[n_states + k])};")
        body.append(f"            y{i} = y{i} + d{i} * (expm1(b{i} * dt) / b{i});")
    body += [f"            y{i} = y{i} + dt * d{i};" for i in range(n_states) if i not in gates]
    body.append("        } else {")
    body += [f"            y{i} = y{i} + dt * d{i};" for i in range(n_states)]
    body.append("        }")
    loads = [f"    T y{i} = initial[{i}LL * n + i];" for i in range(n_states)]
    loads += [f"    const T p{k} = parameters[{k}LL * n + i];" for k in range(n_params)]
    stores = [f"        saved[((long long)row * {n_states} + {i}) * n + i] = y{i};" for i in range(n_states)]
    first = [line.replace("(long long)row", "0LL").replace("        ", "    ", 1) for line in stores]
    entry = """
extern "C" __global__ void {prefix}_{suffix}(
    const {t}* __restrict__ initial, const {t}* __restrict__ parameters, {t}* __restrict__ saved,
    const long long n, const int n_saved, const int save_every, const {t} dt, const double time0,
    const double stim_amplitude, const double stim_start, const double stim_duration,
    const double stim_period, const int rush_larsen)
{{
    {prefix}_cell<{t}>(initial, parameters, saved, n, n_saved, save_every, dt, time0, stim_amplitude, stim_start,
                       stim_duration, stim_period, rush_larsen);
}}
"""
    return f"""// Generated by fhn_automl.physics._ionic_codegen from the cell model {model.name!r}
// ({model.source}). One thread steps one cell with forward Euler, or Rush-Larsen for the gates
// {', '.join(model.gates) or '(none)'}. Do not edit: regenerate from the model.

template <typename T>
__device__ __forceinline__ void {prefix}_cell(
    const T* __restrict__ initial, const T* __restrict__ parameters, T* __restrict__ saved,
    const long long n, const int n_saved, const int save_every, const T dt, const double time0,
    const double stim_amplitude, const double stim_start, const double stim_duration,
    const double stim_period, const int rush_larsen)
{{
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) {{
        return;
    }}
{chr(10).join(loads)}
{chr(10).join(first)}
    long long k = 0;
    for (int row = 1; row < n_saved; ++row) {{
      for (int s = 0; s < save_every; ++s, ++k) {{
        const double now = time0 + (double)k * (double)dt;
        double since = now - stim_start;
        if (stim_period > 0.0) {{
            since = since - floor(since / stim_period) * stim_period;
        }}
        const T i_stim = (now >= stim_start && since < stim_duration) ? T(stim_amplitude) : T(0.0);
{chr(10).join(body)}
      }}
{chr(10).join(stores)}
    }}
}}
{entry.format(prefix=prefix, suffix="f32", t="float")}{entry.format(prefix=prefix, suffix="f64", t="double")}"""


def exec_generated(source: str, name: str, filename: str, namespace: dict) -> Any:
    code = compile(source, filename, "exec")
    exec(code, namespace)  # noqa: S102 -- our own generated source, from the model's SymPy equations
    return namespace[name]
