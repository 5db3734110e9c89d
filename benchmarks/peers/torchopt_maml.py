"""Peer side of ``benchmarks/maml.py --peer``: one MAML meta-update on 2D navigation written with torchopt 0.7.3.

Runs inside the torch virtual environment (``benchmarks/setup_torch_env.sh``), never imports jaxrl. Reads one job
as JSON (argv[1]), prints one line ``RESULT {json}`` on stdout.

The meta-update is written the way torchopt's MAML-RL example writes it (a Python loop over tasks; per task:
sample trajectories, ``torchopt.MetaSGD.step(inner_loss)`` -- a differentiable SGD step, ``create_graph=True``
inside -- sample with the adapted policy, ``outer_loss.backward()``, ``torchopt.recover_state_dict``; then one
``torch.optim.Adam`` step). It computes what ``jaxrl.algos.meta.maml`` computes with ``outer='promp'``,
``num_outer_epochs=1``, ``surrogate='dice'``:

* nav2d (MAML's 2D navigation): start at the origin, goal ~ U[-0.5, 0.5]^2, actions in [-1, 1] mapped to
  velocities in [-0.1, 0.1], ``pos' = pos + v``, reward ``-||pos' - goal||``, terminated within 0.01 of the goal
  on both axes (later steps masked), horizon 100; the ``num_trajectories`` episodes of a task are one batched
  tensor environment (no Python loop over trajectories);
* Gaussian policy: tanh MLP (``hidden``) -> mean, a state-independent log std parameter (init -0.5);
* inner loss: DiCE (with Mao et al.'s baseline term) on rewards and a per-task linear-feature baseline
  (features ``o, o^2, t, t^2, t^3, 1``), both scaled by ``1 / (T * std(advantage))`` (no gradient), one SGD
  step with ``inner_lr``;
* outer loss: ProMP's clipped surrogate ``-E[min(rho A, clip(rho, 1-eps, 1+eps) A)]`` on the adapted policy's
  trajectories, ``rho = pi_adapted / pi_sampling`` (1 at the first outer epoch), A = return-to-go minus the
  linear baseline, standardised; one Adam step (``outer_lr``) on the mean over tasks;
* first order (``first_order: true``): the inner step is the same torchopt SGD transformation applied
  functionally (``torchopt.sgd`` + ``torchopt.apply_updates``) on gradients taken without ``create_graph``
  (torchopt's ``MetaSGD`` always differentiates through the gradient), so the outer gradient flows only
  through the identity part of ``theta' = theta + alpha g``.

Timing: ``warmup`` untimed meta-updates, then ``repeats`` timed ones (rollouts included), each
``time.perf_counter`` around a whole meta-update. PyTorch runs eagerly: there is no compile step.
"""

from __future__ import annotations

import json
import math
import os
import resource
import sys
import time

import torch
import torch.nn as nn
import torchopt


class GaussianPolicy(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden, log_std_init: float):
        super().__init__()
        layers, last = [], obs_dim
        for width in hidden:
            layers += [nn.Linear(last, width), nn.Tanh()]
            last = width
        self.body = nn.Sequential(*layers)
        self.mean = nn.Linear(last, act_dim)
        with torch.no_grad():  # jaxrl's init: orthogonal(sqrt 2) hidden, orthogonal(0.01) mean head, zero bias
            for m in self.body:
                if isinstance(m, nn.Linear):
                    nn.init.orthogonal_(m.weight, math.sqrt(2.0))
                    nn.init.zeros_(m.bias)
            nn.init.orthogonal_(self.mean.weight, 0.01)
            nn.init.zeros_(self.mean.bias)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(log_std_init)))

    def forward(self, obs):
        mean = self.mean(self.body(obs))
        return mean, self.log_std.clamp(-20.0, 2.0).expand_as(mean)


def log_prob(mean, log_std, action):
    """Diagonal Gaussian log-density, summed over the action dimension."""
    z = (action - mean) / log_std.exp()
    return (-0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


class Nav2D:
    """``n`` nav2d episodes of one task as tensors ``[n, 2]``."""

    def __init__(self, goal, n):
        self.goal, self.n = goal, n

    def reset(self):
        self.pos = torch.zeros(self.n, 2)
        return self.pos

    def step(self, action):
        v = (action.clamp(-1.0, 1.0) + 1.0) * 0.5 * 0.2 - 0.1
        self.pos = self.pos + v
        delta = self.pos - self.goal
        reward = -delta.norm(dim=-1)
        terminated = (delta.abs() < 0.01).all(-1)
        return self.pos, reward, terminated


def rollout(policy, goal, n, horizon):
    """``[n, T]`` trajectories with the stochastic policy (no gradient), masked after termination."""
    env = Nav2D(goal, n)
    obs = env.reset()
    alive = torch.ones(n)
    o_buf, a_buf, r_buf, m_buf, lp_buf = [], [], [], [], []
    with torch.no_grad():
        for _ in range(horizon):
            mean, log_std = policy(obs)
            action = mean + log_std.exp() * torch.randn_like(mean)
            next_obs, reward, terminated = env.step(action)
            o_buf.append(obs), a_buf.append(action), r_buf.append(reward * alive), m_buf.append(alive)
            lp_buf.append(log_prob(mean, log_std, action))
            alive = alive * (~terminated).float()
            obs = next_obs
    stack = lambda xs: torch.stack(xs, dim=1)
    return stack(o_buf), stack(a_buf), stack(r_buf), stack(m_buf), stack(lp_buf)


def returns_to_go(rewards, gamma):
    """``G_t = sum_{t' >= t} gamma^{t'-t} r_t'`` along the last axis."""
    out, g = torch.zeros_like(rewards), torch.zeros(rewards.shape[0])
    for t in reversed(range(rewards.shape[1])):
        g = rewards[:, t] + gamma * g
        out[:, t] = g
    return out


def linear_baseline(obs, rtg, mask, reg):
    n, t = rtg.shape
    time_ = (torch.arange(t, dtype=torch.float32) / 100.0).view(1, t, 1).expand(n, t, 1)
    o = obs.clamp(-10.0, 10.0)
    feats = torch.cat([o, o**2, time_, time_**2, time_**3, torch.ones_like(time_)], -1) * mask[..., None]
    f = feats.reshape(-1, feats.shape[-1])
    a = f.T @ f + (reg + 1e-6) * torch.eye(f.shape[1])
    w = torch.linalg.solve(a, f.T @ (rtg * mask).reshape(-1))
    return (feats @ w) * mask


def inner_loss(policy, traj, c):
    """Negated DiCE surrogate with baseline, rewards and baseline scaled by 1 / (T std(adv))."""
    obs, act, rew, mask, _ = traj
    horizon = rew.shape[1]
    rtg = returns_to_go(rew, c["gamma"])
    base = linear_baseline(obs, rtg, mask, c["baseline_reg"])
    adv = (rtg - base) * mask
    valid = mask.sum().clamp(min=1.0)
    std = (((adv - adv.sum() / valid) ** 2 * mask).sum() / valid).sqrt()
    scale = 1.0 / (horizon * (std + 1e-6))
    mean, log_std = policy(obs)
    lp = log_prob(mean, log_std, act) * mask
    w = lp.cumsum(-1)
    box = lambda x: torch.exp(x - x.detach())
    disc = c["gamma"] ** torch.arange(horizon, dtype=torch.float32)
    per_step = disc * (rew * scale * box(w) + base * scale * (box(w - lp) - box(w)))
    return -per_step.sum(-1).mean()


def outer_loss(policy, traj, c):
    """ProMP clipped surrogate on the adapted policy's trajectories (negated)."""
    obs, act, rew, mask, old_lp = traj
    rtg = returns_to_go(rew, c["gamma"])
    adv = rtg - linear_baseline(obs, rtg, mask, c["baseline_reg"])
    adv = (adv - (adv * mask).sum() / mask.sum()) * mask
    adv = adv / ((adv**2).sum() / mask.sum()).sqrt().add(1e-8)
    mean, log_std = policy(obs)
    ratio = torch.exp(log_prob(mean, log_std, act) - old_lp)
    eps = c["clip_eps"]
    surr = torch.minimum(ratio * adv, ratio.clamp(1 - eps, 1 + eps) * adv)
    return -(surr * mask).sum() / mask.sum()


def meta_update(policy, inner_opt, outer_opt, c):
    """One meta-update: ``num_tasks`` fresh tasks, one inner step each, one outer Adam step."""
    n, horizon = c["num_trajectories"], c["horizon"]
    goals = torch.rand(c["num_tasks"], 2) - 0.5
    outer_opt.zero_grad()
    if inner_opt is not None:  # second order: torchopt.MetaSGD, the MAML-RL example's way
        policy_state = torchopt.extract_state_dict(policy)
        optim_state = torchopt.extract_state_dict(inner_opt)
        for goal in goals:
            pre = rollout(policy, goal, n, horizon)
            inner_opt.step(inner_loss(policy, pre, c))
            post = rollout(policy, goal, n, horizon)
            (outer_loss(policy, post, c) / len(goals)).backward()
            torchopt.recover_state_dict(policy, policy_state)
            torchopt.recover_state_dict(inner_opt, optim_state)
    else:  # first order: the same SGD transformation, functional, on gradients without create_graph
        names, params = zip(*policy.named_parameters())
        sgd = torchopt.sgd(lr=c["inner_lr"])  # descent on the negated surrogate = the inner ascent step
        for goal in goals:
            pre = rollout(policy, goal, n, horizon)
            grads = torch.autograd.grad(inner_loss(policy, pre, c), params)
            updates, _ = sgd.update(grads, sgd.init(params), inplace=False)
            adapted = torchopt.apply_updates(params, updates, inplace=False)
            fpolicy = lambda obs: torch.func.functional_call(policy, dict(zip(names, adapted)), (obs,))
            post = rollout(fpolicy, goal, n, horizon)
            (outer_loss(fpolicy, post, c) / len(goals)).backward()
    outer_opt.step()


def main(job: dict) -> dict:
    c = job["config"]
    torch.manual_seed(job.get("seed", 0))
    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    policy = GaussianPolicy(2, 2, tuple(c["hidden"]), c["log_std_init"])
    inner_opt = None if c["first_order"] else torchopt.MetaSGD(policy, lr=c["inner_lr"])
    outer_opt = torch.optim.Adam(policy.parameters(), lr=c["outer_lr"])
    times = []
    for i in range(job["warmup"] + job["repeats"]):
        t0 = time.perf_counter()
        meta_update(policy, inner_opt, outer_opt, c)
        if i >= job["warmup"]:
            times.append(time.perf_counter() - t0)
    import importlib.metadata as md

    return {
        "times_s": times,
        "compile_s": 0.0,
        "torch_threads": torch.get_num_threads(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "versions": {p: md.version(p) for p in ("torch", "torchopt")},
        "pid": os.getpid(),
    }


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(json.loads(sys.argv[1]))), flush=True)
