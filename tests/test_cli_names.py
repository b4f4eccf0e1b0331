"""Names are data: a state or action named like rich markup ("[red]x") or an emoji code (":smile:") is printed as
written by the commands that draw tables (`gradient`, `estimators`), never styled, dropped or replaced."""
from __future__ import annotations

import json

from verify.cli import main


def test_gradient_prints_markup_and_emoji_codes_in_names_as_written(tmp_path, capsys):
    names = ["[red]x", ":smile:"]
    path = tmp_path / "names.json"
    path.write_text(json.dumps({"initial": [0.5, 0.5], "transitions": [[[0.5, 0.5]] * 2] * 2,
                                "rewards": [[1, 0], [0, 1]], "horizon": 2, "states": names,
                                "actions": ["[bold]a", ":b:"]}))
    assert main(["gradient", str(path)]) == 0
    out = capsys.readouterr().out
    for name in [*names, "[bold]a", ":b:"]:
        assert name in out, f"{name!r} not printed as written"
    assert "\N{SMILING FACE WITH OPEN MOUTH}" not in out


def test_estimators_prints_formulas_as_written(capsys):
    from verify.checks.estimators import ESTIMATORS

    assert main(["estimators", "--no-color"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    # a description holding brackets ("logp[1:] * G[:-1]") survives the table (folding aside)
    bracketed = [e for e in ESTIMATORS if "[" in e.description]
    assert bracketed, "no description with brackets to test"
    for e in bracketed:
        assert e.name in out
        assert all(part in out for part in e.description.split()[:4])


def test_check_prints_a_problem_named_like_markup_or_an_emoji_code_as_written(tmp_path, capsys):
    path = tmp_path / "odd.json"
    path.write_text(json.dumps({"name": "[red]x :smile: [f]", "initial": [1.0], "transitions": [[[1.0], [1.0]]],
                                "rewards": [[1, 0]], "horizon": 1}))
    main(["check", str(path), "--no-color", "--episodes", "200"])
    out = capsys.readouterr().out
    assert "[red]x :smile: [f]" in out, out[:300]
    assert "\N{SMILING FACE WITH OPEN MOUTH}" not in out
