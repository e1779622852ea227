"""Issue 17 item 7: every command's --help is true. Each option has a help text, every default a help
text states is the parser's default, and the claims that can be checked against behaviour are."""

from __future__ import annotations

import argparse
import importlib
import re

import pytest

COMMANDS = ("fhn_automl.data", "fhn_automl.train", "fhn_automl.pipeline", "fhn_automl.post.__main__",
            "fhn_automl.bench", "fhn_automl.pull", "fhn_automl.serve", "fhn_automl.reproduce")


class _Captured(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


def _parser(module_name: str, monkeypatch: pytest.MonkeyPatch) -> argparse.ArgumentParser:
    """The parser a command's ``main`` builds, caught at ``parse_args`` (nothing runs)."""
    def capture(self, *args, **kwargs):
        raise _Captured(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(_Captured) as caught:
        importlib.import_module(module_name).main([])
    return caught.value.parser


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]


@pytest.mark.parametrize("module_name", COMMANDS)
def test_every_option_has_a_help_text(module_name, monkeypatch):
    parser = _parser(module_name, monkeypatch)
    missing = [a.option_strings[0] if a.option_strings else a.dest for a in _options(parser) if not a.help]
    assert not missing, f"{module_name}: options without help: {missing}"


#: "(default 20000)", "default: smoke", "default 5)" ... -> the stated value
_STATED_DEFAULT = re.compile(r"\bdefault:? ([\w.\-]+)(?=[),;]|$)", re.IGNORECASE)


def _same(stated: str, default: object) -> bool:
    if isinstance(default, bool) or default is None:
        return False
    if isinstance(default, (int, float)):
        try:
            return float(stated.replace("_", "")) == float(default)
        except ValueError:
            return False
    return stated == str(default)


@pytest.mark.parametrize("module_name", COMMANDS)
def test_every_stated_default_is_the_parsers(module_name, monkeypatch):
    parser = _parser(module_name, monkeypatch)
    checked, wrong = 0, []
    for action in _options(parser):
        match = _STATED_DEFAULT.search(" ".join((action.help or "").split()))
        if match is None or action.default is None or isinstance(action.default, bool):
            continue  # "default: the budget's" and the like name a rule, not a value
        checked += 1
        if not _same(match.group(1), action.default):
            wrong.append((action.option_strings, match.group(1), action.default))
    assert not wrong, f"{module_name}: help says one default, the parser has another: {wrong}"
    if module_name in ("fhn_automl.train", "fhn_automl.bench", "fhn_automl.pipeline"):
        assert checked >= 3  # the check saw the options it is meant for


def test_help_claims_match_behaviour(monkeypatch):
    from fhn_automl.post.registry import SMOKE_ALIAS, registered_model_name
    from fhn_automl.post.settings import DEFAULT_BUDGET
    from fhn_automl.search.budgets import BUDGET_NAMES

    post = _parser("fhn_automl.post.__main__", monkeypatch)
    # registers fhn_automl.<problem>, as registered_model_name does
    assert "fhn_automl.<problem>" in post.description and registered_model_name("problem_b_s") == "fhn_automl.problem_b_s"
    assert f"``{SMOKE_ALIAS}`` when the search ran at the smoke budget" in " ".join(post.description.split())
    # no fixed stage budget: by hand it takes the search's, as the search's own post-stage does
    # (tests/post/test_front_stability.py runs it on a smoke search and checks the preset used)
    budget = next(a for a in post._actions if a.dest == "budget")
    assert budget.default is None and "the search's budget" in budget.help and DEFAULT_BUDGET in budget.help
    search = _parser("fhn_automl.pipeline", monkeypatch)
    search_budget = next(a for a in search._actions if a.dest == "budget")
    assert search_budget.default == "smoke" and tuple(search_budget.choices) == tuple(BUDGET_NAMES)
    # train leaves the final model, not the best checkpoint (the trainer's model_selection says which)
    train_text = " ".join(_parser("fhn_automl.train", monkeypatch).description.split())
    assert "the model at the end of training" in train_text and "leaves the best model" not in train_text
    for name in ("pull", "serve"):
        alias = next(a for a in _parser(f"fhn_automl.{name}", monkeypatch)._actions if a.dest == "alias")
        assert alias.default == "pareto" and "smoke" in alias.help
