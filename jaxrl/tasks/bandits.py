"""Bandit and random tabular-MDP task families for meta-RL (RL^2, Duan et al. 2016, section 4.1-4.2).

The task (arm means; transition and reward tables) lives in the env params and is hidden from the observation.
A family's ``sample(key, n)`` returns env params whose every leaf has a leading task axis ``[n]``, so a batch of
tasks is ``jax.vmap(env.step, in_axes=(0, 0, 0, 0))(keys, states, actions, params)``.

Episode convention for bandits: as in the RL^2 paper, **each pull is one episode of length 1**
(``max_steps_in_episode=1``, ``terminated=True`` after the pull: a natural end, nothing to bootstrap), so an
RL^2 trial of ``n`` pulls is ``n`` consecutive episodes on the same task (the agent's memory carries across
them). Setting ``max_steps_in_episode=n`` instead makes one episode of ``n`` pulls (terminated at the end).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from jaxrl.envs.registry import register


class _DiscreteSpaces:
    """The spaces of a task env with ``n`` discrete actions and observations in ``[0, 1]^d``; the env sets
    ``space_sizes = (n, d)`` in its ``__init__``."""

    space_sizes: tuple[int, int]

    @property
    def num_actions(self) -> int:
        return self.space_sizes[0]

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(self.space_sizes[0])

    def observation_space(self, params=None) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (self.space_sizes[1],), jnp.float32)


# ---------------------------------------------------------------------------------------------------------
# Bernoulli K-armed bandit
# ---------------------------------------------------------------------------------------------------------


@struct.dataclass
class BanditState(environment.EnvState):
    time: jax.Array


@struct.dataclass
class BanditParams:
    arm_means: jax.Array  # [K] success probabilities (the hidden task)
    max_steps_in_episode: jax.Array | int = 1


class BernoulliBandit(_DiscreteSpaces, environment.Environment[BanditState, BanditParams]):
    """K-armed Bernoulli bandit; reward ~ Bernoulli(arm_means[action]); observation a constant ``[1.0]``."""

    def __init__(self, num_arms: int = 5):
        super().__init__()
        self.num_arms = int(num_arms)
        self.space_sizes = (self.num_arms, 1)

    @property
    def default_params(self) -> BanditParams:
        return BanditParams(arm_means=jnp.linspace(0.0, 1.0, self.num_arms, dtype=jnp.float32))

    def step_env(self, key, state, action, params):
        mean = params.arm_means[action]
        reward = jax.random.bernoulli(key, mean).astype(jnp.float32)
        state = BanditState(time=state.time + 1)
        terminated = self.is_terminated(state, params)
        return self.get_obs(state, params), state, reward, terminated, {"arm_mean": mean}

    def reset_env(self, key, params):
        state = BanditState(time=jnp.zeros((), jnp.int32))
        return self.get_obs(state, params), state

    def get_obs(self, state, params=None, key=None) -> jax.Array:
        return jnp.ones((1,), jnp.float32)

    def is_terminated(self, state, params) -> jax.Array:
        return state.time >= params.max_steps_in_episode

    def is_truncated(self, state, params) -> jax.Array:
        # The end of a bandit episode is natural (terminated), never a time-limit truncation.
        return jnp.zeros((), jnp.bool_)

    @property
    def name(self) -> str:
        return f"BernoulliBandit-{self.num_arms}"


class BernoulliBandits:
    """Family of K-armed Bernoulli bandits with arm means i.i.d. U[0, 1] (RL^2, section 4.1)."""

    def __init__(self, num_arms: int = 5, max_steps_in_episode: int = 1):
        self.num_arms = int(num_arms)
        self.space_sizes = (self.num_arms, 1)
        self.max_steps_in_episode = int(max_steps_in_episode)
        self.env = BernoulliBandit(self.num_arms)

    def sample(self, key: jax.Array, n: int) -> BanditParams:
        means = jax.random.uniform(key, (n, self.num_arms), jnp.float32)
        return BanditParams(arm_means=means, max_steps_in_episode=jnp.full((n,), self.max_steps_in_episode, jnp.int32))


# ---------------------------------------------------------------------------------------------------------
# Random tabular MDPs
# ---------------------------------------------------------------------------------------------------------


@struct.dataclass
class TabularState(environment.EnvState):
    state: jax.Array  # int32 current MDP state
    time: jax.Array


@struct.dataclass
class TabularParams:
    transition_probs: jax.Array  # [S, A, S]: P(s' | s, a)
    reward_means: jax.Array  # [S, A]
    reward_std: jax.Array | float = 1.0
    initial_state_probs: jax.Array | None = None  # [S]; None -> always state 0
    max_steps_in_episode: jax.Array | int = 10


class TabularMDP(_DiscreteSpaces, environment.Environment[TabularState, TabularParams]):
    """Finite MDP: ``s' ~ P(.|s,a)``, ``r ~ N(R(s,a), reward_std^2)``; observation = one-hot(s) ``[S]``.

    Episodes end by truncation after ``max_steps_in_episode`` steps (10 in RL^2). The reward is computed for
    the (s, a) pair that was acted on.
    """

    def __init__(self, num_states: int = 10, num_mdp_actions: int = 5):
        super().__init__()
        self.num_states = int(num_states)
        self.num_mdp_actions = int(num_mdp_actions)
        self.space_sizes = (self.num_mdp_actions, self.num_states)

    @property
    def default_params(self) -> TabularParams:
        s, a = self.num_states, self.num_mdp_actions
        return TabularParams(
            transition_probs=jnp.full((s, a, s), 1.0 / s, jnp.float32),
            reward_means=jnp.ones((s, a), jnp.float32),
            reward_std=jnp.float32(1.0),
            initial_state_probs=jax.nn.one_hot(0, s, dtype=jnp.float32),
        )

    def step_env(self, key, state, action, params):
        key_r, key_s = jax.random.split(key)
        mean = params.reward_means[state.state, action]
        reward = mean + params.reward_std * jax.random.normal(key_r, (), jnp.float32)
        next_s = jax.random.categorical(key_s, jnp.log(params.transition_probs[state.state, action]))
        new_state = TabularState(state=next_s.astype(jnp.int32), time=state.time + 1)
        terminated = self.is_terminated(new_state, params)
        return self.get_obs(new_state, params), new_state, reward, terminated, {"reward_mean": mean}

    def reset_env(self, key, params):
        if params.initial_state_probs is None:
            s0 = jnp.zeros((), jnp.int32)
        else:
            s0 = jax.random.categorical(key, jnp.log(params.initial_state_probs)).astype(jnp.int32)
        state = TabularState(state=s0, time=jnp.zeros((), jnp.int32))
        return self.get_obs(state, params), state

    def get_obs(self, state, params=None, key=None) -> jax.Array:
        return jax.nn.one_hot(state.state, self.num_states, dtype=jnp.float32)

    def is_terminated(self, state, params) -> jax.Array:
        return jnp.zeros((), jnp.bool_)

    @property
    def name(self) -> str:
        return f"TabularMDP-S{self.num_states}-A{self.num_mdp_actions}"


class RandomTabularMDPs:
    """RL^2 random MDPs (section 4.2): ``P(.|s,a) ~ Dirichlet(1)``, ``R(s,a) ~ N(1, 1)``, rewards
    ``~ N(R(s,a), 1)``, episodes of 10 steps. Episodes start in state 0 unless ``random_start=True``
    (uniform start state)."""

    def __init__(
        self,
        num_states: int = 10,
        num_actions: int = 5,
        episode_length: int = 10,
        random_start: bool = False,
    ):
        self.num_states, self.num_actions = int(num_states), int(num_actions)
        self.episode_length = int(episode_length)
        self.random_start = bool(random_start)
        self.env = TabularMDP(self.num_states, self.num_actions)

    def sample(self, key: jax.Array, n: int) -> TabularParams:
        key_p, key_r = jax.random.split(key)
        s, a = self.num_states, self.num_actions
        probs = jax.random.dirichlet(key_p, jnp.ones((s,), jnp.float32), (n, s, a)).astype(jnp.float32)
        means = 1.0 + jax.random.normal(key_r, (n, s, a), jnp.float32)
        if self.random_start:
            init = jnp.full((n, s), 1.0 / s, jnp.float32)
        else:
            init = jnp.broadcast_to(jax.nn.one_hot(0, s, dtype=jnp.float32), (n, s))
        return TabularParams(
            transition_probs=probs,
            reward_means=means,
            reward_std=jnp.ones((n,), jnp.float32),
            initial_state_probs=init,
            max_steps_in_episode=jnp.full((n,), self.episode_length, jnp.int32),
        )


def slice_task(params: Any, i) -> Any:
    """Task ``i`` out of a batch of params with a leading task axis."""
    return jax.tree.map(lambda x: x[i], params)


# ---------------------------------------------------------------------------------------------------------
# Registered names (meta-RL): ``jaxrl.envs.make(name) -> (family, held-out test tasks [K_test])``
# ---------------------------------------------------------------------------------------------------------

HELD_OUT_SEED = 2**20 + 7  # held-out meta-test tasks come from their own key stream


def _bandit_factory(default_arms: int):
    def make(num_arms: int = default_arms, num_test_tasks: int = 100, seed: int = HELD_OUT_SEED):
        family = BernoulliBandits(num_arms)
        return family, family.sample(jax.random.PRNGKey(seed), int(num_test_tasks))

    return make


def _mdp_factory(
    num_states: int = 10,
    num_actions: int = 5,
    episode_length: int = 10,
    num_test_tasks: int = 100,
    seed: int = HELD_OUT_SEED,
):
    family = RandomTabularMDPs(num_states, num_actions, episode_length)
    return family, family.sample(jax.random.PRNGKey(seed), int(num_test_tasks))


def _register() -> None:
    register("bandit", _bandit_factory(5))
    register("bandit-10", _bandit_factory(10))
    register("tabular-mdp", _mdp_factory)


_register()
