"""The derivations as one proof: the seams between them, the results they claim, and lemmas used by statement.

Each step of a derivation is checked on its own (``derive.steps.replay``, ``derive.grounding``); this module
checks what connects them.  A ``Derivation`` says what it starts from and what it proves
(``starts_from``, ``ends_at``, ``proves``; see ``derive.steps.Derivation``), and three kinds of check follow:

  seam    its first line (``starts_from``) or last line (``ends_at``) *is* the line an earlier derivation
          proved, or the definition nabla_theta J = nabla_theta E_tau[R(tau)]: an exact identity, decided like a
          step (structurally or by ``expand``) and grounded on the same tabular MDPs as the steps, never by
          sharing a Python constant;
  proves  the result claimed holds through the chain: ``GRAD_J`` needs a seam to a line proved equal to
          nabla_theta J (or a last equation whose left side is nabla_theta J); a lemma's statement lhs = rhs needs
          the first line to be lhs and the last line rhs (cut the lemma's derivation short and this fails);
  lemma   every step citing a lemma (a rule with ``proved_by``) rewrites instances of the lemma's *proved
          statement* (the ``proves`` of the derivation named), and that derivation proves it.

Every check is a ``ChainCheck`` row (never an exception); a failed seam names both derivations and shows both
lines and the grounding's counterexample.

>>> from derive.seed import DERIVATIONS
>>> rows = check_chain(DERIVATIONS, sizes=())
>>> all(r.ok for r in rows), [r.label for r in rows if r.kind == "seam"][:2]
(True, ['reward_to_go ← source (15)', 'baseline → reward_to_go (RTG9)'])
"""

from __future__ import annotations

from dataclasses import dataclass

from sympy import Basic, Wild, preorder_traversal
from sympy.core.relational import Equality

from derive.notation import Density, Expectation, Grad, Return, t, tau, theta, tp
from derive.rules import Rule
from derive.steps import GRAD_J, Derivation, Step, equivalent

__all__ = ["ChainCheck", "check_chain", "DEFINITION", "SEAM_RULE", "first_line", "last_line", "conclusion",
           "chain_description", "resolve"]

#: nabla_theta J(pi_theta), by definition: the gradient of E_{tau ~ p(.|theta)}[R(tau)]
DEFINITION = Grad(Expectation(Return(tau), Density(tau, theta)))

SEAM_RULE = Rule("seam", "The line is the result an earlier derivation proved (an exact identity).",
                 ("none: an identity",), "seam", fn=lambda e: e)


def _line(e: Basic) -> Basic:
    return e.rhs if isinstance(e, Equality) else e


def first_line(d: Derivation) -> Basic:
    """The derivation's first line (the right side, when its first step starts from an equation)."""
    return _line(d.steps[0].before)


def last_line(d: Derivation) -> Basic:
    """The derivation's last line (the right side of a last equation)."""
    return _line(d.steps[-1].after)


def conclusion(d: Derivation) -> tuple[str, Basic]:
    """(label, line): the line ``d`` newly proves: its last line, or its first line if it ``ends_at`` a result."""
    if d.ends_at is not None:
        return f"{d.name} (first line)", first_line(d)
    return f"{d.name} ({d.steps[-1].number})", last_line(d)


@dataclass(frozen=True)
class ChainCheck:
    """One check between derivations.

    Attributes:
      kind: "seam" (a first or last line against a proved line), "proves" (the claimed result) or "lemma"
        (a step's use of a lemma against its statement).
      derivation: the derivation checked.
      label: the link in words, e.g. "pg_q ← reward_to_go (RTG9)".
      ok: the check passed.
      message: how it was decided, or what differs (both lines, the grounding's counterexample).
      grounding: ``derive.grounding.GroundingResult`` per size (seams only).
    """

    kind: str
    derivation: str
    label: str
    ok: bool
    message: str
    grounding: tuple = ()

    @property
    def passed(self) -> bool:
        return self.ok

    def to_json(self) -> dict:
        return {"kind": self.kind, "derivation": self.derivation, "link": self.label, "ok": self.ok,
                "message": self.message,
                "grounding": [{"sizes": list(g.sizes), "method": g.method, "ok": g.ok, "message": g.message}
                              for g in self.grounding], "passed": self.passed}


class ChainError(ValueError):
    """A reference to an unknown or later derivation or step."""


def resolve(ref: str, earlier: dict) -> tuple[str, Basic]:
    """(label, line) of a reference: ``GRAD_J``, a derivation's name, or "name:NUMBER".

    Raises:
      ChainError: the derivation (among ``earlier``, name -> Derivation) or step does not exist.
    """
    if ref in (GRAD_J, "∇J"):
        return "∇J (definition)", DEFINITION
    name, _, number = ref.partition(":")
    if name not in earlier:
        raise ChainError(f"refers to {name!r}, which is not an earlier derivation "
                         f"(earlier: {', '.join(earlier) or 'none'})")
    d = earlier[name]
    if not number:
        return conclusion(d)
    for s in d.steps:
        if str(s.number) == number:
            return f"{name} ({s.number})", _line(s.after)
    raise ChainError(f"refers to step {number!r} of {name!r}, which has no such step")


def _show(e: Basic) -> str:
    from derive.printing import to_unicode
    try:
        return to_unicode(e)
    except Exception:  # noqa: BLE001  (a malformed line is shown as SymPy prints it)
        return str(e)


def _equals_grad(ref: str, earlier: dict, proved_grad: set) -> bool:
    """Whether the line ``ref`` names is proved equal to grad J: the definition; the result of a derivation that
    proves grad J; or one of its steps, if that derivation is chained (every line equals grad J) or the step is an
    equation whose left side is grad J (the source's (8), (14), (15), not its (3))."""
    if ref in (GRAD_J, "∇J"):
        return True
    name, _, number = ref.partition(":")
    if name not in proved_grad:
        return False
    d = earlier[name]
    if not number or d.starts_from is not None or d.ends_at is not None:
        return True
    step = next((s for s in d.steps if str(s.number) == number), None)
    return step is not None and isinstance(step.after, Equality) and equivalent(step.after.lhs, DEFINITION)[0]


def _seam(d: Derivation, which: str, ref: str, earlier: dict, sizes, proved_grad: set) -> ChainCheck:
    from derive.grounding import ground_step

    arrow = "←" if which == "first" else "→"
    line = first_line(d) if which == "first" else last_line(d)
    try:
        target_label, target = resolve(ref, earlier)
    except ChainError as err:
        return ChainCheck("seam", d.name, f"{d.name} {arrow} {ref}", False, f"seam {d.name} {arrow} {ref}: {err}")
    label = f"{d.name} {arrow} {target_label}"
    ok, how = equivalent(target, line)
    seam = Step(f"{d.name}:{which}", target, SEAM_RULE, line)
    # The same expression is the same line at every point: nothing to ground (grounding cannot interpret a line
    # outside an expectation, such as the state-visitation form pg_bellman ends at).
    grounding = () if target == line else tuple(ground_step(seam, sz, "auto") for sz in sizes)
    where = f"{d.name}'s {which} line"
    if ok and all(g.ok for g in grounding):
        grad = " (proved equal to ∇J)" if _equals_grad(ref, earlier, proved_grad) else ""
        return ChainCheck("seam", d.name, label, True, f"{where} is the line {target_label}{grad}: {how}", grounding)
    bad = [g for g in grounding if not g.ok]
    ground_text = f"; grounding: {bad[0].message}" if bad else "; grounding finds them equal at the sizes tried"
    return ChainCheck("seam", d.name, label, False,
                      f"seam {label} does not hold: {where} is {_show(line)} but {target_label} proved "
                      f"{_show(target)}{ground_text}", grounding)


def _claim(d: Derivation, seams: list[ChainCheck], earlier: dict, proved_grad: set) -> ChainCheck | None:
    if d.proves is None:
        return None
    if d.proves == GRAD_J:
        label = f"{d.name} proves ∇J"
        last = d.steps[-1].after
        if isinstance(last, Equality) and equivalent(last.lhs, DEFINITION)[0]:
            return ChainCheck("proves", d.name, label, True,
                              f"its last line ({d.steps[-1].number}) is an equation whose left side is ∇J")
        for link in ("starts_from", "ends_at"):
            ref = getattr(d, link)
            if ref is None:
                continue
            seam = next((s for s in seams if s.derivation == d.name and ("←" if link == "starts_from" else "→")
                         in s.label), None)
            if seam is not None and seam.ok and _equals_grad(ref, earlier, proved_grad):
                return ChainCheck("proves", d.name, label, True,
                                  f"every line equals ∇J: it {link.replace('s_', 's ')} {seam.label.split(' ', 2)[2]}, "
                                  "which is proved equal to ∇J")
        why = ("its seams do not hold or link to no result proved equal to ∇J"
               if d.starts_from or d.ends_at else "it starts from no proved result and its last line is not ∇J = …")
        return ChainCheck("proves", d.name, label, False, f"{d.name} claims to prove ∇J, but {why}")
    stmt = d.proves
    label = f"{d.name} proves {_show(stmt.lhs)} = {_show(stmt.rhs)}"
    ok_l, how_l = equivalent(stmt.lhs, first_line(d))
    ok_r, how_r = equivalent(stmt.rhs, last_line(d))
    if ok_l and ok_r:
        return ChainCheck("proves", d.name, label, True,
                          f"its first line is the statement's left side and its last line ({d.steps[-1].number}) "
                          "the right side")
    problems = []
    if not ok_l:
        problems.append(f"its first line is {_show(first_line(d))}, not the statement's left side {_show(stmt.lhs)}")
    if not ok_r:
        from derive.grounding import counterexample
        witness = counterexample(Step(f"{d.name}:end", last_line(d), SEAM_RULE, stmt.rhs), (2, 2, 2))
        problems.append(f"it ends at ({d.steps[-1].number}) {_show(last_line(d))}, not at the statement's right "
                        f"side {_show(stmt.rhs)}" + (f" (without the hypotheses the statement needs they differ: "
                                                      f"{witness})" if witness else ""))
    return ChainCheck("proves", d.name, label, False, f"{d.name} does not prove its statement: " + "; ".join(problems))


def _instances(step: Step):
    """The nodes of the step's line (or focus) that its rule's matcher rewrites, with the replacement."""
    where = step.at if step.at is not None else step.before
    out = []
    for node in preorder_traversal(where):
        try:
            new = step.rule.match(node, {})
        except Exception:  # noqa: BLE001  (a matcher that cannot read the node does not match it)
            new = None
        if new is not None:
            out.append((node, new))
    return out


def _lemma_use(d: Derivation, step: Step, lemmas: dict, claims: dict) -> ChainCheck:
    name = step.rule.proved_by
    label = f"{d.name} ({step.number}) uses {name}"
    lemma = lemmas.get(name)
    if lemma is None:
        return ChainCheck("lemma", d.name, label, False,
                          f"({step.number}) {step.rule.name}: cites the lemma {name!r}, but no derivation of that "
                          "name is in the chain")
    stmt = lemma.proves
    if not isinstance(stmt, Equality):
        return ChainCheck("lemma", d.name, label, False,
                          f"({step.number}) {step.rule.name}: the derivation {name!r} states no result (proves=None)")
    claim = claims.get(name)
    if claim is not None and not claim.ok:
        return ChainCheck("lemma", d.name, label, False,
                          f"({step.number}) {step.rule.name}: the lemma is not proved: {claim.message}")
    if step.rule.match is None:
        return ChainCheck("lemma", d.name, label, False,
                          f"({step.number}) {step.rule.name}: a lemma's rule must rewrite instances (a matcher)")
    free = sorted((v for v in stmt.lhs.free_symbols if v in (t, tp)), key=str)
    wilds = {v: Wild(f"w_{v}") for v in free}
    pattern = stmt.lhs.xreplace(wilds)
    found = _instances(step)
    if not found:
        return ChainCheck("lemma", d.name, label, False,
                          f"({step.number}) {step.rule.name}: no instance of {_show(stmt.lhs)} in the line")
    for node, new in found:
        m = node.match(pattern) if wilds else ({} if node == pattern else None)
        if m is None:
            return ChainCheck("lemma", d.name, label, False,
                              f"({step.number}) {step.rule.name}: rewrites {_show(node)}, which is not an instance "
                              f"of the lemma's statement's left side {_show(stmt.lhs)}")
        expected = stmt.rhs.xreplace({v: m[w] for v, w in wilds.items() if w in m})
        if not equivalent(expected, new)[0]:
            return ChainCheck("lemma", d.name, label, False,
                              f"({step.number}) {step.rule.name}: replaces {_show(node)} by {_show(new)}, but the "
                              f"lemma's statement gives {_show(expected)}")
    return ChainCheck("lemma", d.name, label, True,
                      f"{len(found)} instance{'s' if len(found) > 1 else ''} of {name}'s proved statement "
                      f"{_show(stmt.lhs)} = {_show(stmt.rhs)}")


def check_chain(derivations, sizes=((2, 2, 2),)) -> list[ChainCheck]:
    """Check every seam, claimed result and lemma use of ``derivations`` (in order: a derivation refers to
    earlier ones only).  Seams are grounded at ``sizes`` ("auto", as the report grounds steps).

    Returns:
      ChainCheck rows in derivation order: each derivation's seams, its claim, then its lemma uses.
    """
    earlier, proved_grad, rows, claims = {}, set(), [], {}
    lemmas = {d.name: d for d in derivations}
    for d in derivations:
        seams = []
        for which, ref in (("first", d.starts_from), ("last", d.ends_at)):
            if ref is not None:
                seams.append(_seam(d, which, ref, earlier, sizes, proved_grad))
        rows += seams
        claim = _claim(d, seams, earlier, proved_grad)
        if claim is not None:
            rows.append(claim)
            claims[d.name] = claim
            if claim.ok and d.proves == GRAD_J:
                proved_grad.add(d.name)
        earlier[d.name] = d
    for d in derivations:   # lemma uses after every claim is known (a lemma may be listed after its use)
        rows += [_lemma_use(d, s, lemmas, claims) for s in d.steps if s.rule.proved_by]
    return rows


def chain_description(d: Derivation) -> str:
    """What the derivation starts from and proves, in words (documents and the report)."""
    parts = []
    if d.starts_from:
        parts.append("starts from " + ("the definition of ∇J" if d.starts_from in (GRAD_J, "∇J")
                                        else f"the result of {d.starts_from}"))
    if d.ends_at:
        parts.append(f"ends at the result of {d.ends_at}")
    if d.proves == GRAD_J:
        parts.append("proves every line equal to ∇J")
    elif isinstance(d.proves, Equality):
        parts.append(f"proves {_show(d.proves.lhs)} = {_show(d.proves.rhs)}")
    return "; ".join(parts) if parts else "stands alone"
