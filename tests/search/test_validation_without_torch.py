"""A search file is validated in full on a driver without torch (the learning layer's names and
parsers import none): a bad activation, shape class or window is still caught there."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# Runs in a fresh interpreter whose import system refuses torch, as on a driver without it.
SCRIPT = textwrap.dedent('''
    import sys, tempfile, pathlib

    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked in this test")
            return None

    sys.meta_path.insert(0, NoTorch())

    import fhn_automl.learning.architecture
    from fhn_automl.search.space import SearchSpaceError, load_search_space

    folder = pathlib.Path(tempfile.mkdtemp())
    bad = {
        "activation": "layers:\\n  choices: [gelu-16]\\n  depths: [2]\\n",
        "shape": "layers:\\n  choices: [silu-16]\\n  depths: [2]\\n  shape_classes: [star]\\n",
        "window": "layers:\\n  choices: [silu-16]\\n  depths: [2]\\nwindow: 'split:1'\\n",
    }
    for name, layers in bad.items():
        path = folder / f"{name}.yaml"
        path.write_text("problem: problem_b_s\\nkind: ddnn\\n" + layers)
        try:
            load_search_space(str(path))
        except SearchSpaceError as exc:
            print(name, "caught:", exc)
        else:
            print(name, "NOT caught")
    good = folder / "good.yaml"
    good.write_text("problem: problem_b_s\\nkind: ddnn\\nlayers:\\n  choices: [silu-16, tanh-8]\\n"
                    "  depths: [2]\\n  shape_classes: [rectangle]\\nwindow: 'split:4'\\n")
    print("good trials:", len(load_search_space(str(good)).select_trials(
        load_search_space(str(good)).budget("paper"), None)))
    print("torch imported:", "torch" in sys.modules)
''')


def test_search_files_are_validated_without_torch():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("activation caught:") and "gelu" in line for line in lines), done.stdout
    assert any(line.startswith("shape caught:") and "star" in line for line in lines), done.stdout
    assert any(line.startswith("window caught:") and "split:1" in line for line in lines), done.stdout
    assert "good trials: 2" in lines, done.stdout  # silu-16 x2 and tanh-8 x2: the rectangles
    assert "torch imported: False" in lines, done.stdout
