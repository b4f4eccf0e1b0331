r"""The score-function identity for Gaussian policies with continuous states, grounded exactly on a 1-D LQ problem.

The model (H = 2 actions, every constant a symbol)::

    x_0 ~ N(m0, v0),  u_t ~ pi(u|x_t) = N(K x_t + k, sigma^2),  x_1 = A x_0 + B u_0 + w_0,  w_0 ~ N(0, W),
    R(tau) = -(Q x_0^2 + R u_0^2) - gamma (Q x_1^2 + R u_1^2),   J(K, k, sigma) = E[R(tau)].

Every expectation is a Gaussian integral done exactly: the trajectory is written in independent standard normals
(x_0 = m0 + sqrt(v0) z_0, u_t = K x_t + k + sigma e_t, w_0 = sqrt(W) n_0), the integrand is a polynomial in them
(times powers of 1/sigma from the score), and E[z^(2j)] = (2j - 1)!!, E[z^(2j+1)] = 0 integrate it (the same rule
as ``derive.continuous.gaussian_integrate``, here in several variables). The claims, each proved by
``expand(lhs - rhs) == 0`` for theta = K, k and sigma:

1. ``score_is_policy_only``: grad_theta log p(tau|theta) = sum_t grad_theta log pi(u_t|x_t): the log-densities of
   x_0 and of the transition N(A x + B u, W) do not depend on theta (differentiated from the explicit densities).
2. ``trajectory_form``: grad J = E[R(tau) sum_t grad log pi(u_t|x_t)] (the score-function identity; the score is
   sympy's derivative of the explicit log-density log N(u; K x + k, sigma^2), evaluated on the trajectory).
3. ``reward_to_go``: grad J = E[sum_t grad log pi(u_t|x_t) sum_{t' >= t} gamma^t' r_t'] (causality).
4. ``reparameterisation``: grad J = E[grad_theta R(tau(theta, z_0, e_0, n_0, e_1))]: the pathwise gradient with
   the noises fixed, u_t = K x_t + k + sigma e_t, i.e. grad E[f(x)] = E[grad f(mu + sigma eps)].
5. ``restart_differs``: the restarted discount gamma^(t' - t) gives E[...] - grad J = (1/gamma - 1) x (the t = 1
   term of grad J): not zero for gamma != 1 (the pitfall, with its exact bias).

>>> checks = check_gaussian_lq()
>>> [(c.claim, c.param, c.ok) for c in checks][:3]
[('score_is_policy_only', 'K', True), ('score_is_policy_only', 'k', True), ('score_is_policy_only', 'sigma', True)]
>>> all(c.ok for c in checks)
True
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable

from sympy import Basic, Integer, Poly, Symbol, diff, expand, factorial2, log, pi, sqrt, symbols, sympify

from derive.laurent import MPQ, Atoms, Laurent, NotLaurent, mono, mono_items

__all__ = ["GaussianLQCheck", "LQ_SYMBOLS", "check_gaussian_lq", "expect_normal", "gaussian_lq_objective",
           "reparameterisation_1d"]

K, k = symbols("K k", real=True)
sigma = Symbol("sigma", positive=True)
A, B, m0 = symbols("A B m0", real=True)
Q, R, v0, W, gamma = symbols("Q R v0 W gamma", positive=True)
z0, e0, n0, e1 = symbols("z0 e0 n0 e1", real=True)           # independent standard normals
x_, u_, mean_ = symbols("x u mean", real=True)
#: name -> symbol of the model's constants and parameters
LQ_SYMBOLS = {"K": K, "k": k, "sigma": sigma, "A": A, "B": B, "m0": m0, "Q": Q, "R": R, "v0": v0, "W": W,
              "gamma": gamma}
PARAMS = (("K", K), ("k", k), ("sigma", sigma))
NORMALS = (z0, e0, n0, e1)


def _moment(j: int) -> Basic:
    return Integer(0) if j % 2 else (factorial2(j - 1) if j else Integer(1))


def expect_normal(expr: Basic, normals=NORMALS) -> Basic:
    """E[expr] over independent standard normals ``normals``: exact Gaussian integrals of a polynomial in them.

    >>> z = Symbol("z", real=True)
    >>> expect_normal((1 + z) ** 4, (z,))
    10

    Raises:
      ValueError: ``expr`` is not a polynomial in ``normals``.
    """
    fast = _expect_in_ring(sympify(expr), tuple(normals))
    return fast if fast is not None else _expect_by_expand(expr, normals)


def _expect_by_expand(expr: Basic, normals=NORMALS) -> Basic:
    """``expect_normal`` by ``expand`` and ``Poly`` (any coefficients; the reference for the ring path)."""
    e = expand(expr)
    if not e.is_polynomial(*normals):
        raise ValueError(f"not a polynomial in the standard normals: {e}")
    poly = Poly(e, *normals)
    total = Integer(0)
    for powers, coeff in poly.terms():
        factor = Integer(1)
        for j in powers:
            factor *= _moment(j)
            if factor == 0:
                break
        total += coeff * factor
    return expand(total)


class _NotPolynomial(Exception):
    pass


def _expect_in_ring(expr: Basic, normals: tuple):
    """``expect_normal`` in SymPy's sparse polynomial ring over QQ (``sympy.polys.rings``), or None where the
    expression is not a polynomial in the normals with rational coefficients (then the caller expands).

    The same integral, E[z^(2j)] = (2j - 1)!!, E[z^(2j+1)] = 0, applied monomial by monomial; every subexpression
    free of the normals that is not a sum, product or power with a natural exponent (1/sigma, sqrt(v0), ...) is
    carried as an opaque generator and put back at the end, where SymPy's own Mul combines its powers. The
    products are multiplied out as dictionaries of exponent tuples instead of ``expand``'s expression trees
    (about 20 times faster on the LQ claims).
    """
    ring_form = _RingForm.of(sympify(expr), normals)
    return None if ring_form is None else ring_form.to_expr(ring_form.expect(ring_form.poly))


class _RingForm:
    """An expression as an element of SymPy's sparse ring over QQ: the normals, its symbols and its opaque
    subexpressions (``_expect_in_ring``) as generators."""

    def __init__(self, R, index: dict, opaque: dict, poly, n: int):
        self.R, self.index, self.opaque, self.poly, self.n = R, index, opaque, poly, n

    @classmethod
    def of(cls, expr: Basic, normals: tuple):
        """The ring form of ``expr``, or None when it is not a polynomial in ``normals`` with rational coefficients."""
        from sympy import Dummy, QQ
        from sympy.polys.rings import ring

        opaque: dict = {}
        symbols: dict = {}

        def scan(e):
            if e.is_Symbol:
                symbols.setdefault(e, e)
            elif e.is_Number:
                if not e.is_Rational:
                    raise _NotPolynomial
            elif e.is_Add or e.is_Mul:
                for a in e.args:
                    scan(a)
            elif e.is_Pow and e.exp.is_Integer and e.exp >= 0:
                scan(e.base)
            elif e.free_symbols.isdisjoint(normals):
                opaque.setdefault(e, Dummy())
            else:
                raise _NotPolynomial

        try:
            scan(expr)
        except _NotPolynomial:
            return None
        gens = list(dict.fromkeys([*normals, *symbols, *opaque.values()]))
        R, *ring_gens = ring(gens, QQ)
        index = {g: x for g, x in zip(gens, ring_gens)}
        memo: dict = {}

        def build(e):
            out = memo.get(e)
            if out is not None:
                return out
            if e in opaque:
                out = index[opaque[e]]
            elif e.is_Symbol:
                out = index[e]
            elif e.is_Number:
                out = R(QQ(int(e.p), int(e.q)))
            elif e.is_Add:
                out = R.zero
                for a in e.args:
                    out = out + build(a)
            elif e.is_Mul:
                out = R.one
                for a in e.args:
                    out = out * build(a)
            else:   # a power with a natural exponent (scan admitted nothing else)
                out = build(e.base) ** int(e.exp)
            memo[e] = out
            return out

        return cls(R, index, opaque, build(expr), len(normals))

    def expect(self, poly):
        """E[poly] over the normals (the first ``n`` generators), in the ring."""
        n = self.n
        moments = [int(_moment(j)) for j in range(1 + max((max(m[:n], default=0) for m in poly.keys()), default=0))]
        total: dict = {}
        for monom, coeff in poly.items():
            factor = 1
            for j in monom[:n]:
                factor *= moments[j]
                if not factor:
                    break
            if factor:
                rest = (0,) * n + monom[n:]
                total[rest] = total.get(rest, 0) + coeff * factor
        return self.R.from_dict({m: c for m, c in total.items() if c})

    def diff(self, poly, symbol: Symbol):
        """d poly / d symbol with the normals held fixed (the pathwise derivative), or None when an opaque generator
        depends on ``symbol`` (its derivative would need the chain rule: the caller differentiates in SymPy)."""
        if any(symbol in e.free_symbols for e in self.opaque):
            return None
        gen = self.index.get(symbol)
        return self.R.zero if gen is None else poly.diff(gen)

    def to_expr(self, poly) -> Basic:
        value = poly.as_expr()
        back = {d: e for e, d in self.opaque.items()}
        return expand(value.xreplace(back)) if back else value


def _log_gaussian(value, mean, var) -> Basic:
    return -(value - mean) ** 2 / (2 * var) - log(var) / 2 - log(2 * pi) / 2


@functools.cache
def _trajectory():
    """x_t, u_t, r_t of the 1-D problem in the standard normals, and the score of each step from the density."""
    x0 = m0 + sqrt(v0) * z0
    u0 = K * x0 + k + sigma * e0
    x1 = A * x0 + B * u0 + sqrt(W) * n0
    u1 = K * x1 + k + sigma * e1
    r = (-(Q * x0 ** 2 + R * u0 ** 2), -(Q * x1 ** 2 + R * u1 ** 2))
    log_pi = _log_gaussian(u_, K * x_ + k, sigma ** 2)      # the explicit policy density, differentiated below
    scores = {name: tuple(diff(log_pi, p).subs({u_: u, x_: x}) for x, u in ((x0, u0), (x1, u1)))
              for name, p in PARAMS}
    return (x0, x1), (u0, u1), r, scores


def gaussian_lq_objective() -> Basic:
    """J(K, k, sigma) = E[r_0 + gamma r_1] as a polynomial in every symbol (exact Gaussian integrals)."""
    _, _, r, _ = _trajectory()
    return expect_normal(r[0] + gamma * r[1])


@dataclass(frozen=True)
class GaussianLQCheck:
    """One claim for one parameter: both sides in closed form, ``ok`` iff they are the same expression.

    ``sides`` gives (lhs, rhs) as SymPy expressions; a claim proved in Laurent form writes them out on first
    access only (the verdict does not need them).
    """

    claim: str
    param: str
    sides: Callable[[], tuple[Basic, Basic]] = field(repr=False, compare=False)
    ok: bool

    @functools.cached_property
    def lhs(self) -> Basic:
        return self.sides()[0]

    @functools.cached_property
    def rhs(self) -> Basic:
        return self.sides()[1]


def _given(lhs: Basic, rhs: Basic) -> Callable[[], tuple[Basic, Basic]]:
    return lambda: (lhs, rhs)


def _rtg(r, restart: bool):
    if restart:
        return (r[0] + gamma * r[1], r[1])
    return (r[0] + gamma * r[1], gamma * r[1])


def _score_policy_only(p: Symbol) -> tuple[Basic, Basic]:
    """d/dp of log p(tau) from the explicit densities minus the policy's part: the dynamics' share, 0."""
    xs, us, _, _ = _trajectory()
    xa, ua, xb, ub, x1v = symbols("xa ua xb ub x1v", real=True)
    log_p0 = _log_gaussian(xa, m0, v0)
    log_P = _log_gaussian(x1v, A * xa + B * ua, W)
    log_pi = _log_gaussian(ua, K * xa + k, sigma ** 2) + _log_gaussian(ub, K * x1v + k, sigma ** 2)
    total = diff(log_p0 + log_P + log_pi, p)
    return expand(total), expand(diff(log_pi, p))


def check_gaussian_lq() -> list[GaussianLQCheck]:
    """The claims of the module docstring, for theta = K, k, sigma; each proved exactly (no sampling).

    score_is_policy_only differentiates log-densities and is decided by SymPy's ``expand``. Every side of the other
    claims is a Laurent polynomial with rational coefficients (``derive.laurent``) in the normals and the
    model's symbols once sqrt(v0) and sqrt(W) are atoms of their own (v0 = sv^2, W = sw^2: one-to-one on the
    positive values they take): the Gaussian integrals are taken term by term, d/dtheta is the exponent rule,
    and a claim holds iff lhs - rhs has no term left. ``_check_gaussian_lq_by_expand`` proves the same claims
    with SymPy's ``expand`` (the reference; about four times slower), and is used when a side is not such a
    polynomial.
    """
    xs, us, r, scores = _trajectory()
    try:
        return _score_rows() + _claims_in_laurent(r, scores)
    except NotLaurent:
        return _score_rows() + _claims_by_expand(r, scores)


def _check_gaussian_lq_by_expand() -> list[GaussianLQCheck]:
    """``check_gaussian_lq`` with every claim decided by SymPy's ``expand`` (the reference implementation)."""
    xs, us, r, scores = _trajectory()
    return _score_rows() + _claims_by_expand(r, scores)


def _score_rows() -> list[GaussianLQCheck]:
    """score_is_policy_only per parameter: the log-densities' derivatives, in SymPy (they hold logs)."""
    rows = []
    for name, p in PARAMS:
        lhs, rhs = _score_policy_only(p)
        rows.append(GaussianLQCheck("score_is_policy_only", name, _given(lhs, rhs), expand(lhs - rhs) == 0))
    return rows


def _claims_by_expand(r, scores) -> list[GaussianLQCheck]:
    ret = r[0] + gamma * r[1]
    # R(tau) in the ring of the normals and the constants: d/dtheta of J = E[R] and the pathwise d R / d theta (the
    # normals held fixed) are the ring's derivatives, exact and without SymPy's Derivative (a third of this check)
    ret_ring = _RingForm.of(ret, NORMALS)
    J_ring = ret_ring.expect(ret_ring.poly)
    out = []
    for name, p in PARAMS:
        d_J, d_ret = ret_ring.diff(J_ring, p), ret_ring.diff(ret_ring.poly, p)
        grad = expand(diff(gaussian_lq_objective(), p)) if d_J is None else ret_ring.to_expr(d_J)
        sc = scores[name]
        checks = {
            "trajectory_form": expect_normal(ret * (sc[0] + sc[1])),
            "reward_to_go": expect_normal(sum(s * G for s, G in zip(sc, _rtg(r, False)))),
            "reparameterisation": (expect_normal(diff(ret, p)) if d_ret is None else
                                   ret_ring.to_expr(ret_ring.expect(d_ret))),
        }
        for claim, value in checks.items():
            out.append(GaussianLQCheck(claim, name, _given(grad, value), expand(grad - value) == 0))
        restart = expect_normal(sum(s * G for s, G in zip(sc, _rtg(r, True))))
        t1_term = expect_normal(sc[1] * gamma * r[1])          # the t = 1 term of grad J (reward-to-go form)
        out.append(GaussianLQCheck("restart_differs", name,
                                   _given(expand(restart - grad), expand((1 / gamma - 1) * t1_term)),
                                   expand(restart - grad - (1 / gamma - 1) * t1_term) == 0 and
                                   expand(t1_term) != 0))
    return out


class _LaurentForm:
    """The LQ claims' expressions as Laurent polynomials: the normals are atoms 0..3, sqrt(v0) and sqrt(W) atoms
    ``sv`` and ``sw`` (v0 = sv^2, W = sw^2), every other symbol an atom."""

    def __init__(self):
        self.atoms = Atoms()
        for z in NORMALS:
            self.atoms.leaf(z)
        self.roots = {v0: Symbol("sv", positive=True), W: Symbol("sw", positive=True)}
        self.memo: dict = {}

    def of(self, e: Basic) -> Laurent:
        """``e`` as a Laurent polynomial; NotLaurent for anything else (a log, a root of another symbol...)."""
        out = self.memo.get(e)
        if out is None:
            out = self.memo[e] = self._of(e)
        return out

    def _of(self, e: Basic) -> Laurent:
        if e.is_Symbol:
            root = self.roots.get(e)
            return self.atoms.leaf(e) if root is None else self.atoms.leaf(root) ** 2
        if e.is_Rational:
            return Laurent.const(int(e.p) if e.q == 1 else MPQ(int(e.p), int(e.q)))
        if e.is_Add:
            return Laurent.sum(self.of(a) for a in e.args)
        if e.is_Mul:
            out = Laurent.const(1)
            for a in e.args:
                out = out * self.of(a)
            return out
        if e.is_Pow and e.exp.is_Integer:
            return self.of(e.base) ** int(e.exp)
        if e.is_Pow and e.base in self.roots and e.exp.is_Rational and e.exp.q == 2:
            return self.atoms.leaf(self.roots[e.base]) ** int(e.exp.p)        # v0^(p/2) = sv^p
        raise NotLaurent(f"not a Laurent polynomial in the LQ symbols: {e}")

    def expect(self, poly: Laurent) -> Laurent:
        """E[poly] over the standard normals: E[z^(2j)] = (2j - 1)!!, E[z^(2j+1)] = 0, term by term."""
        out: dict = {}
        n = len(NORMALS)
        for m, c in poly.terms.items():
            factor, rest = 1, m
            for atom, e in mono_items(m):
                if atom >= n:
                    break                       # items come in increasing atom id: the normals first
                if e < 0:
                    raise NotLaurent("a negative power of a standard normal")
                factor *= int(_moment(e))
                if not factor:
                    break
                rest -= mono(((atom, e),))      # the monomial without this normal (the encoding is linear)
            if factor:
                out[rest] = out.get(rest, 0) + c * factor
        return Laurent(out)

    def diff(self, poly: Laurent, symbol: Symbol) -> Laurent:
        """d poly / d symbol, every other atom (the normals among them) held fixed."""
        k = self.atoms.id(symbol)
        unit = mono(((k, 1),))
        out: dict = {}
        for m, c in poly.terms.items():
            e = dict(mono_items(m)).get(k, 0)
            if e:
                out[m - unit] = out.get(m - unit, 0) + c * e
        return Laurent(out)

    def to_expr(self, poly: Laurent) -> Basic:
        return poly.to_expr(self.atoms).xreplace({root: sqrt(v) for v, root in self.roots.items()})

    def sides(self, lhs: Laurent, rhs: Laurent) -> Callable[[], tuple[Basic, Basic]]:
        return lambda: (self.to_expr(lhs), self.to_expr(rhs))


def _claims_in_laurent(r, scores) -> list[GaussianLQCheck]:
    """The claims trajectory_form, reward_to_go, reparameterisation and restart_differs per parameter, each side a
    Laurent polynomial (``check_gaussian_lq``)."""
    L = _LaurentForm()
    r0, r1, g = L.of(r[0]), L.of(r[1]), L.of(gamma)
    ret = r0 + g * r1
    J = L.expect(ret)
    out = []
    for name, p in PARAMS:
        grad = L.diff(J, p)
        s0, s1 = (L.of(s) for s in scores[name])
        values = {"trajectory_form": L.expect(ret * (s0 + s1)),
                  "reward_to_go": L.expect(s0 * ret + s1 * (g * r1)),
                  "reparameterisation": L.expect(L.diff(ret, p))}
        for claim, value in values.items():
            out.append(GaussianLQCheck(claim, name, L.sides(grad, value), (grad - value).is_zero()))
        restart = L.expect(s0 * ret + s1 * r1)
        t1_term = L.expect(s1 * (g * r1))              # the t = 1 term of grad J (reward-to-go form)
        bias = (g ** -1 - 1) * t1_term
        out.append(GaussianLQCheck("restart_differs", name, L.sides(restart - grad, bias),
                                   (restart - grad - bias).is_zero() and not t1_term.is_zero()))
    return out


def reparameterisation_1d(degree: int = 4) -> tuple[Basic, Basic]:
    """(d/dmu E[f(x)], E[f'(mu + sigma eps)]) and likewise for sigma, x ~ N(mu, sigma^2), f = sum c_j x^j: equal.

    >>> (dmu, path_mu), (dsig, path_sig) = reparameterisation_1d(3)
    >>> expand(dmu - path_mu) == 0 and expand(dsig - path_sig) == 0
    True
    """
    mu, s = Symbol("mu", real=True), Symbol("sigma", positive=True)
    eps = Symbol("eps", real=True)
    c = symbols(f"c0:{degree + 1}", real=True)
    f = lambda v: sum(cj * v ** j for j, cj in enumerate(c))   # noqa: E731
    E = expect_normal(f(mu + s * eps), (eps,))
    return ((diff(E, mu), expect_normal(diff(f(mu + s * eps), mu), (eps,))),
            (diff(E, s), expect_normal(diff(f(mu + s * eps), s), (eps,))))
