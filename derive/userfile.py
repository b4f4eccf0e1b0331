"""Your own derivation, in a small text file: what it starts from, what it proves, and its steps with rules.

A derivation file is plain text, one entry per line (``#`` starts a comment; a line whose brackets are open
continues on the next):

    name: advantage_from_q                        # an identifier, not a built-in derivation's name
    title: The advantage form equals the Q form   # optional
    ends_at: pg_q                                 # or starts_from: (see derive.steps.Derivation)
    proves: grad_J                                # or an equation, Eq(lhs, rhs), for a lemma
    start: E(time_sum(gamma**t * score(t) * A(t)))
    step A1 advantage_definition: E(time_sum(gamma**t * score(t) * (Q(t) - V(t))))
    step A4 tower_property: ...
    at: E(time_sum(gamma**t * score(t) * V(t)))   # optional focus of the step above

Expressions are Python syntax over the notation's names only (``NAMES``): E(body) is the mean over
tau ~ p(.|theta), E_given(body, t) conditions on h_t (E_given_action on h_t, a_t), E_action(body, t) is the
mean over a_t ~ pi(.|s_t), sum_actions / sum_states sum over a_t / s_t, pi(t), P(t), r(t), b(t), rho0(),
Q(t), V(t), A(t), Pr(t), R (the return R(tau)), p_tau, grad(e), log(e), score(t) (grad log pi(a_t|s_t)),
reward_to_go(t), time_sum(e[, var, lo, hi]) (default over t = 0..H-1), Sum(e, (var, lo, hi)), Eq(a, b), and the
symbols t, tp (t'), H, gamma, theta, tau.  The file is parsed with ``ast`` and interpreted node by node: no
Python code runs.  Rules are named as in ``RULES`` (``derive.rules.RULES`` and the lemma ``eglp``).

A malformed file (a syntax error, an unknown name or rule, a missing ``name:`` or ``start:``) raises
``DerivationFileError`` with the file's line number; a step that does not follow is not an error here: the
checks (replay, grounding, the chain) report it.

>>> d = parse_derivation('''
... name: demo
... starts_from: pg_q
... proves: grad_J
... start: E(time_sum(gamma**t * score(t) * Q(t)))
... step D1 expectation_of_sum: time_sum(E(gamma**t * score(t) * Q(t)))
... ''')
>>> d.name, d.starts_from, [s.rule.name for s in d.steps]
('demo', 'pg_q', ['expectation_of_sum'])
"""

from __future__ import annotations

import ast
import difflib
from pathlib import Path

from sympy import Eq, Float, Integer, Rational, Sum, Tuple, log

from derive.eglp import EGLP_RULE, score
from derive.notation import (
    ActionExpectation, ActionSum, Advantage, Baseline, CondExpectation, Density, Expectation, Grad, InitialDist,
    Policy, QValue, Return, Reward, StateProb, StateSum, Transition, VValue, gamma, t, tau, theta, time_sum, tp, H,
)
from derive.pg_theorem import reward_to_go
from derive.rules import RULES as _RULES
from derive.steps import GRAD_J, Derivation, Step

__all__ = ["DerivationFileError", "parse_derivation", "load_derivation", "RULES", "NAMES", "MAX_FILE_BYTES"]

MAX_FILE_BYTES = 1_000_000
RULES = {**_RULES, EGLP_RULE.name: EGLP_RULE}
_p_tau = Density(tau, theta)

#: the names an expression may use
NAMES = {
    "E": lambda body: Expectation(body, _p_tau),
    "E_given": lambda body, time: CondExpectation(body, time),
    "E_given_action": lambda body, time: CondExpectation(body, time, 1),
    "E_action": ActionExpectation, "sum_actions": ActionSum, "sum_states": StateSum,
    "pi": Policy, "P": Transition, "r": Reward, "b": Baseline, "rho0": InitialDist,
    "Q": QValue, "V": VValue, "A": Advantage, "Pr": StateProb,
    "grad": Grad, "log": log, "score": score, "reward_to_go": reward_to_go, "time_sum": time_sum,
    "Sum": Sum, "Eq": lambda a, b: Eq(a, b, evaluate=False),
    "R": Return(tau), "p_tau": _p_tau, "t": t, "tp": tp, "H": H, "gamma": gamma, "theta": theta, "tau": tau,
}
_KEYS = ("name", "title", "summary", "starts_from", "ends_at", "proves", "start", "step", "at")
_OPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
        ast.Div: lambda a, b: a / b, ast.Pow: lambda a, b: a ** b}


class DerivationFileError(ValueError):
    """The derivation file is malformed (the message names the line)."""


def _interpret(node, where: str):
    """One AST node as a SymPy object, over ``NAMES`` only."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return Integer(node.value) if isinstance(node.value, int) else Rational(str(node.value))
    if isinstance(node, ast.Name):
        if node.id not in NAMES:
            close = difflib.get_close_matches(node.id, NAMES, 3)
            raise DerivationFileError(f"{where}: unknown name {node.id!r}"
                                      + (f" (did you mean {', '.join(close)}?)" if close else ""))
        return NAMES[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_interpret(node.left, where), _interpret(node.right, where))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _interpret(node.operand, where)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.Tuple):
        return Tuple(*[_interpret(e, where) for e in node.elts])
    if isinstance(node, ast.Call) and not node.keywords:
        fn = _interpret(node.func, where)
        if not callable(fn):
            raise DerivationFileError(f"{where}: {ast.unparse(node.func)} is not a function")
        args = [_interpret(a, where) for a in node.args]
        try:
            return fn(*args)
        except Exception as err:  # noqa: BLE001  (a wrong call is the file's mistake: one line)
            raise DerivationFileError(f"{where}: {ast.unparse(node)}: {type(err).__name__}: {err}") from None
    raise DerivationFileError(f"{where}: {ast.unparse(node)!r} is not allowed here (the notation's names, numbers, "
                              "+ - * / **, calls and tuples only)")


def _expression(text: str, where: str):
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise DerivationFileError(f"{where}: not an expression: {err.msg} in {text.strip()!r}") from None
    value = _interpret(tree.body, where)
    if isinstance(value, Float):
        value = Rational(str(value))
    if callable(value) and not hasattr(value, "free_symbols"):
        raise DerivationFileError(f"{where}: {text.strip()!r} is a function, not an expression")
    return value


def _logical_lines(text: str, source: str):
    """(line number, text) with comments removed and bracketed continuations joined."""
    buf, start, depth = "", 0, 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].rstrip()
        if not buf:
            start = number
        buf = f"{buf} {line.strip()}" if buf else line
        depth += line.count("(") + line.count("[") - line.count(")") - line.count("]")
        if depth <= 0:
            if buf.strip():
                yield start, buf.strip()
            buf, depth = "", 0
    if buf.strip():
        raise DerivationFileError(f"{source}:{start}: unbalanced brackets at the end of the file")


def parse_derivation(text: str, source: str = "<text>") -> Derivation:
    """The ``Derivation`` a derivation file describes.

    Raises:
      DerivationFileError: a malformed entry, an unknown name or rule, or no ``name:`` / ``start:`` / step.
    """
    fields, steps, head = {}, [], None
    for number, line in _logical_lines(text, source):
        where = f"{source}:{number}"
        key, sep, rest = line.partition(":")
        key = key.strip()
        words = key.split()
        if not sep or not words or words[0] not in _KEYS:
            raise DerivationFileError(f"{where}: expected 'KEY: value' with KEY one of {', '.join(_KEYS)}; "
                                      f"got {line[:80]!r}")
        if words[0] == "step":
            if len(words) != 3:
                raise DerivationFileError(f"{where}: a step reads 'step NUMBER RULE: expression', got {key!r}")
            if head is None:
                raise DerivationFileError(f"{where}: a step before 'start:' (the line the first step rewrites)")
            _, label, rule_name = words
            if rule_name not in RULES:
                close = difflib.get_close_matches(rule_name, RULES, 3)
                raise DerivationFileError(f"{where}: unknown rule {rule_name!r}" + (
                    f" (did you mean {', '.join(close)}?)" if close else f"; the rules: {', '.join(sorted(RULES))}"))
            after = _expression(rest, where)
            before = steps[-1].after if steps else head
            try:
                steps.append(Step(int(label) if label.isdigit() else label, before, RULES[rule_name], after))
            except (TypeError, ValueError) as err:
                raise DerivationFileError(f"{where}: {err}") from None
        elif words[0] == "at":
            if not steps:
                raise DerivationFileError(f"{where}: 'at:' (a step's focus) must follow a step")
            last = steps[-1]
            steps[-1] = Step(last.number, last.before, last.rule, last.after, _expression(rest, where))
        elif words[0] == "start":
            if head is not None:
                raise DerivationFileError(f"{where}: a second 'start:'")
            head = _expression(rest, where)
        elif words[0] == "proves":
            value = rest.strip()
            fields["proves"] = GRAD_J if value in (GRAD_J, "∇J") else _expression(value, where)
        else:
            if words[0] in fields:
                raise DerivationFileError(f"{where}: a second '{words[0]}:'")
            fields[words[0]] = rest.strip()
    if "name" not in fields or not fields["name"].isidentifier():
        raise DerivationFileError(f"{source}: 'name: IDENTIFIER' is missing or not an identifier")
    if not steps:
        raise DerivationFileError(f"{source}: no steps ('start: expression' and at least one 'step N RULE: ...')")
    try:
        return Derivation(fields["name"], fields.get("title") or fields["name"], tuple(steps),
                          fields.get("summary", ""), starts_from=fields.get("starts_from") or None,
                          proves=fields.get("proves"), ends_at=fields.get("ends_at") or None)
    except (TypeError, ValueError) as err:
        raise DerivationFileError(f"{source}: {err}") from None


def load_derivation(path) -> Derivation:
    """``parse_derivation`` of a file (UTF-8, at most ``MAX_FILE_BYTES``).

    Raises:
      DerivationFileError: the file cannot be read, is too large, or is malformed.
    """
    p = Path(path)
    try:
        if not p.is_file():
            raise DerivationFileError(f"{path}: not a regular file")
        if p.stat().st_size > MAX_FILE_BYTES:
            raise DerivationFileError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DerivationFileError(f"{path}: cannot read: {err}") from None
    return parse_derivation(text, str(path))
