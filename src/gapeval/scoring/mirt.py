"""An identified, item-level gap: a paired-question MIRT fitted by marginal maximum likelihood.

Model (the "transposed" 2-D Rasch that trusted R software fits as well)::

    logit P(y[m, j, d] = 1) = theta[m, d] + e[j, d],     (e[j, und], e[j, gen]) ~ N(0, Sigma)

Each question ``j`` is a random effect with one easiness per direction, correlated across the two
directions of the same question. Each (model, direction) ability ``theta`` is a fixed effect. The gap of
a model is ``theta[m, und] - theta[m, gen]`` on the common logit scale (positive: understanding ahead).
It is identified because both directions are the same questions: the question effects have mean zero
in each direction, so the abilities carry the location.

The marginal likelihood is integrated on a fixed rectangular grid over the standardised easiness
(``z`` in [-6, 6], ``Q`` nodes per direction, bivariate-normal weights). Since the abilities and the
grid meet only through ``theta[m, d] + s_d * z_q``, every question's log-likelihood on the grid is two
matrix products, and a bootstrap over questions is a reweighting, not a copy. Fitting is by L-BFGS with
analytic gradients to a gradient norm of 1e-8 (reported), in float64.

With a single model, the two directions of each question carry only three free cell shares, so the
question effect is shared across directions (``structure="shared"``: ``e[j, und] = e[j, gen]``). The
gap then equals the conditional (fixed-question) estimate ``log(n10 / n01)``, the log ratio of the
discordant pairs. The fitted ratio of P(und right, gen wrong) to P(und wrong, gen right) is
``exp(gap)`` for every question effect, and the saturated fit matches the observed shares. That holds
whenever the two directions are not negatively associated across questions (odds ratio >= 1, as a
shared question effect implies). Otherwise the spread of the question effect goes to zero, and the gap
is the difference of the marginal logits (tested); McNemar's test on the discordant pairs is reported
beside it in any case.

Responses may be fractional (shares of passing judge samples): the likelihood is then the Bernoulli
quasi-likelihood, and missing responses (NaN) are simply left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit

Structure = Literal["correlated", "shared"]
#: The correlation of a question's two easinesses is kept inside (-RHO_MAX, RHO_MAX): at 1 the grid
#: weights degenerate (a model answering identically both ways drives a small category there).
RHO_MAX = 0.999
#: A weak N(0, 10^2) prior on the abilities keeps them finite when a model answers every question of a
#: direction right (or wrong); elsewhere it moves estimates by about 1e-5 logit.
THETA_PRIOR_VAR = 100.0


@dataclass
class Responses:
    """The response tensor ``y[model, question, direction]`` with the questions' categories.

    Entries are 1 (right), 0 (wrong), a fraction (share of passing judge samples) or NaN (missing).
    """

    models: list[str]
    items: list[str]
    y: np.ndarray
    categories: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.y = np.asarray(self.y, dtype=np.float64)
        if self.y.shape != (len(self.models), len(self.items), 2):
            raise ValueError(f"y has shape {self.y.shape}, expected {(len(self.models), len(self.items), 2)}")
        if not self.categories:
            self.categories = [""] * len(self.items)

    def subset_items(self, idx: np.ndarray) -> Responses:
        """The same models on a subset of questions."""
        return Responses(
            self.models, [self.items[i] for i in idx], self.y[:, idx], [self.categories[i] for i in idx]
        )


@dataclass
class MirtFit:
    """Estimates of one fit.

    Attributes:
        theta: (M, 2) abilities [und, gen] on the logit scale of the questions' distribution.
        sd: Standard deviations of the question easiness [und, gen].
        rho: Correlation of a question's easiness across the two directions.
        gap: (M,) ``theta[:, 0] - theta[:, 1]``.
        se_gap: (M,) standard errors from the observed information (None until computed).
        loglik: Marginal log-likelihood at the optimum.
        grad_norm: Largest absolute gradient entry at the optimum (convergence measure).
        converged: Whether the optimiser met its tolerance.
        iterations: Optimiser iterations.

    """

    theta: np.ndarray
    sd: np.ndarray
    rho: float
    gap: np.ndarray
    loglik: float
    grad_norm: float
    converged: bool
    iterations: int
    structure: Structure
    params: np.ndarray
    se_gap: np.ndarray | None = None
    hessian: np.ndarray | None = None


@dataclass
class _Posterior:
    """What one pass over the quadrature grid gives: the data's likelihood and the posteriors."""

    theta: np.ndarray
    sd: np.ndarray
    rho: float
    eta: list[np.ndarray]  # per direction, (M, Q) linear predictors on the grid
    ll_j: np.ndarray  # (J,) log-likelihood of each question
    post_d: list[np.ndarray]  # per direction, (J, Q) marginal posterior over the grid
    e_post: np.ndarray | None  # (J,) posterior mean of d log w / d rho (correlated structure only)


class _Objective:
    """Negative marginal log-likelihood and its gradient for one data set (with question weights)."""

    def __init__(
        self,
        y: np.ndarray,
        structure: Structure,
        q: int = 41,
        weights: np.ndarray | None = None,
        misclass: np.ndarray | None = None,
    ) -> None:
        obs = ~np.isnan(y)
        # Per direction (sensitivity, false-pass rate) of the judge behind y; None: y is the truth.
        self.misclass = None if misclass is None else np.asarray(misclass, dtype=np.float64).reshape(2, 2)
        self.structure = structure
        self.m: int = int(y.shape[0])
        # Per direction: (J, M) matrices of y*observed and (1-y)*observed.
        self.pos = [np.where(obs[:, :, d], y[:, :, d], 0.0).T.copy() for d in range(2)]
        self.neg = [np.where(obs[:, :, d], 1.0 - y[:, :, d], 0.0).T.copy() for d in range(2)]
        self.z = np.linspace(-6.0, 6.0, q)
        self.w = np.ones(y.shape[1]) if weights is None else np.asarray(weights, dtype=np.float64)

    def unpack(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        theta = x[: 2 * self.m].reshape(self.m, 2)
        if self.structure == "shared":
            s = math.exp(min(float(x[2 * self.m]), 30.0))
            return theta, np.array([s, s]), 1.0
        sd = np.exp(np.minimum(x[2 * self.m : 2 * self.m + 2], 30.0))
        return theta, sd, RHO_MAX * math.tanh(x[2 * self.m + 2])

    def n_params(self) -> int:
        return 2 * self.m + (1 if self.structure == "shared" else 3)

    def _posterior(self, x: np.ndarray) -> _Posterior:
        """Per-question likelihoods and posteriors over the grid at parameters ``x``."""
        theta, sd, rho = self.unpack(x)
        z = self.z
        loga, eta = [], []
        for d in range(2):
            lin = theta[:, d, None] + sd[d] * z[None, :]  # (M, Q)
            eta.append(lin)
            log_pass, log_fail, _, _ = self.link(d, lin)
            loga.append(self.pos[d] @ log_pass + self.neg[d] @ log_fail)  # (J, Q)
        if self.structure == "shared":
            logw = -0.5 * z**2
            logw -= np.log(np.exp(logw - logw.max()).sum()) + logw.max()
            joint = loga[0] + loga[1] + logw[None, :]
            top = joint.max(axis=1, keepdims=True)
            post = np.exp(joint - top)
            lik = post.sum(axis=1, keepdims=True)
            post /= lik
            ll_j = np.log(lik[:, 0]) + top[:, 0]
            post_d = [post, post]
            e_post = None
        else:
            z1, z2 = np.meshgrid(z, z, indexing="ij")
            c = 1.0 - rho * rho
            quad = (z1 * z1 - 2 * rho * z1 * z2 + z2 * z2) / c
            logw = -0.5 * quad
            logw -= np.log(np.exp(logw - logw.max()).sum()) + logw.max()
            wgrid = np.exp(logw)
            top_a = loga[0].max(axis=1, keepdims=True)
            top_b = loga[1].max(axis=1, keepdims=True)
            a = np.exp(loga[0] - top_a)
            b = np.exp(loga[1] - top_b)
            ab = a @ wgrid  # (J, Q): sum over q1 of a[q1] w[q1, q2]
            lik = (ab * b).sum(axis=1)
            ll_j = np.log(lik) + top_a[:, 0] + top_b[:, 0]
            p_b = ab * b / lik[:, None]  # marginal posterior over q2 (gen)
            p_a = a * (b @ wgrid.T) / lik[:, None]  # marginal posterior over q1 (und)
            post_d = [p_a, p_b]
            # d log w / d rho, and the posterior and prior expectations of it, for the correlation
            dlogw = (rho / c) + (z1 * z2) / c - rho * quad / c
            dlogw -= (wgrid * dlogw).sum()
            e_post = ((a @ (wgrid * dlogw)) * b).sum(axis=1) / lik
        return _Posterior(theta, sd, rho, eta, ll_j, post_d, e_post)

    def link(self, d: int, lin: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Log P(observed pass), log P(observed fail) and their derivatives in the linear predictor.

        Without misclassification P(pass) is the logistic of the predictor; with it, a truly right
        output passes with the judge's sensitivity and a truly wrong one with its false-pass rate:
        ``P(pass) = fp + (sens - fp) * expit(lin)``.
        """
        sig = expit(lin)
        if self.misclass is None:
            return log_expit(lin), log_expit(-lin), 1.0 - sig, -sig
        sens, fp = self.misclass[d]
        slope = (sens - fp) * sig * (1.0 - sig)
        p = np.clip(fp + (sens - fp) * sig, 1e-12, 1.0 - 1e-12)
        return np.log(p), np.log1p(-p), slope / p, -slope / (1.0 - p)

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        post = self._posterior(x)
        theta, sd, rho, eta, ll_j, post_d = post.theta, post.sd, post.rho, post.eta, post.ll_j, post.post_d
        z = self.z
        wts = self.w
        nll = -float(wts @ ll_j) + 0.5 * float((theta**2).sum()) / THETA_PRIOR_VAR
        grad = np.zeros(self.n_params())
        g_theta = np.zeros((self.m, 2))
        g_sd = np.zeros(2)
        for d in range(2):
            pw = post_d[d] * wts[:, None]  # (J, Q)
            _, _, d_pass, d_fail = self.link(d, eta[d])  # (M, Q)
            resid_pos = self.pos[d].T @ pw  # (M, Q): sum_j w y P
            resid_neg = self.neg[d].T @ pw  # (M, Q): sum_j w (1 - y) P
            r = d_pass * resid_pos + d_fail * resid_neg
            g_theta[:, d] = r.sum(axis=1)
            g_sd[d] = float((r * z[None, :]).sum()) * sd[d]  # chain rule through log sd
        grad[: 2 * self.m] = -g_theta.reshape(-1) + theta.reshape(-1) / THETA_PRIOR_VAR
        if self.structure == "shared":
            grad[2 * self.m] = -(g_sd[0] + g_sd[1])
        else:
            grad[2 * self.m : 2 * self.m + 2] = -g_sd
            assert post.e_post is not None
            grad[2 * self.m + 2] = -float(wts @ post.e_post) * RHO_MAX * (1.0 - (rho / RHO_MAX) ** 2)
        return nll, grad

    def start(self) -> np.ndarray:
        """Start: logits of the observed shares, unit spread, correlation 0.5."""
        x = np.zeros(self.n_params())
        for d in range(2):
            right = self.pos[d].sum(axis=0)
            total = right + self.neg[d].sum(axis=0)
            share = np.clip((right + 0.5) / (total + 1.0), 1e-3, 1 - 1e-3)
            x[d : 2 * self.m : 2] = np.log(share / (1 - share)) * 1.3
        if self.structure == "correlated":
            x[2 * self.m + 2] = math.atanh(0.5 / RHO_MAX)
        return x


def fit(
    data: Responses | np.ndarray,
    *,
    structure: Structure | None = None,
    q: int = 41,
    weights: np.ndarray | None = None,
    start: np.ndarray | None = None,
    gtol: float = 1e-8,
    with_se: bool = True,
    misclass: np.ndarray | None = None,
) -> MirtFit:
    """Fit the paired-question Rasch model.

    Args:
        data: Responses, or a bare (M, J, 2) array.
        structure: ``correlated`` (default with 2+ models) or ``shared`` (default with one model).
        q: Quadrature nodes per direction.
        weights: Per-question weights (a bootstrap resample as counts).
        start: Starting parameters (warm start), e.g. ``MirtFit.params`` of a previous fit.
        gtol: Gradient tolerance of the optimiser.
        with_se: Compute standard errors from the observed information.
        misclass: The judge's error per direction, ``[[sens_und, false_pass_und], [sens_gen,
            false_pass_gen]]``: the abilities are then those of the true outcomes, which the judge
            observed through these rates (see :mod:`gapeval.scoring.judge_error`).

    """
    y = data.y if isinstance(data, Responses) else np.asarray(data, dtype=np.float64)
    if structure is None:
        structure = "shared" if y.shape[0] == 1 else "correlated"
    obj = _Objective(y, structure, q, weights, misclass)
    x0 = obj.start() if start is None else np.asarray(start, dtype=np.float64)
    res = minimize(
        obj,
        x0,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 2000, "gtol": gtol, "ftol": 1e-15, "maxcor": 30},
    )
    nll, g = obj(res.x)
    theta, sd, rho = obj.unpack(res.x)
    out = MirtFit(
        theta=theta.copy(),
        sd=sd,
        rho=rho,
        gap=theta[:, 0] - theta[:, 1],
        loglik=-nll,
        grad_norm=float(np.abs(g).max()),
        converged=bool(float(np.abs(g).max()) < 1e-5),
        iterations=int(res.nit),
        structure=structure,
        params=res.x.copy(),
    )
    if with_se:
        out.hessian = _hessian(obj, res.x)
        out.se_gap = _se_gap(out.hessian, obj.m)
    return out


def refit_newton(
    data: np.ndarray,
    base: MirtFit,
    weights: np.ndarray,
    *,
    tol: float = 1e-7,
    max_iter: int = 25,
    q: int = 41,
    misclass: np.ndarray | None = None,
) -> tuple[np.ndarray, bool]:
    """Refit on reweighted questions by Newton steps preconditioned with the base fit's Hessian.

    Bootstrap weights average one, so the base Hessian is close to the resample's and the steps converge
    linearly and fast; returns the parameters and whether the step size fell below ``tol``.
    """
    assert base.hessian is not None, "fit the base with with_se=True"
    obj = _Objective(data, base.structure, q, weights, misclass)
    # The pseudo-inverse takes no step along a flat direction (a spread sitting at its boundary).
    h_inv = np.linalg.pinv(base.hessian)
    x = base.params.copy()
    for _ in range(max_iter):
        step = h_inv @ obj(x)[1]
        if not np.all(np.isfinite(step)) or float(np.abs(step).max()) > 5.0:
            return x, False  # diverging (e.g. a spread at its boundary): the caller refits fully
        x -= step
        if float(np.abs(step).max()) < tol:
            return x, True
    return x, False


def _hessian(obj: _Objective, x: np.ndarray) -> np.ndarray:
    """Observed information: central differences of the analytic gradient, symmetrised."""
    n = len(x)
    hess = np.zeros((n, n))
    for i in range(n):
        h = 1e-5 * max(1.0, abs(x[i]))
        up, dn = x.copy(), x.copy()
        up[i] += h
        dn[i] -= h
        hess[:, i] = (obj(up)[1] - obj(dn)[1]) / (2 * h)
    return 0.5 * (hess + hess.T)


def _se_gap(hess: np.ndarray, m: int) -> np.ndarray:
    """Standard errors of the gaps from the inverse observed information."""
    try:
        cov = np.linalg.inv(hess)
    except np.linalg.LinAlgError:
        cov = np.linalg.pinv(hess)
    iu, ig = np.arange(m) * 2, np.arange(m) * 2 + 1
    var = cov[iu, iu] + cov[ig, ig] - 2 * cov[iu, ig]
    se: np.ndarray = np.sqrt(np.maximum(var, 0.0))
    return se


def expected_responses(data: Responses | np.ndarray, result: MirtFit, q: int = 41) -> np.ndarray:
    """E[y | data] under the fit (posterior over each question's easiness): (M, J, 2)."""
    y = data.y if isinstance(data, Responses) else np.asarray(data, dtype=np.float64)
    post = _Objective(y, result.structure, q)._posterior(result.params)
    out = np.empty(y.shape)
    for d in range(2):
        out[:, :, d] = (post.post_d[d] @ expit(post.eta[d]).T).T
    return out
