"""Task families and suites: distributions over env params, known (multi-task) or hidden (meta-RL) to the agent.

Importing this package registers every module's env names with :func:`jaxrl.envs.register`; the env registry
imports it by name on its first lookup (it never imports a task module itself, so there is no envs <-> tasks
cycle).
"""

from jaxrl.tasks import (
    bandits,
    classic_control,
    goal_grid,
    gridworld,
    line_world,
    locomotion,
    navigation,
    point_goal,
    skills,  # noqa: F401  (registers skills-10)
)

__all__ = [
    "bandits",
    "classic_control",
    "goal_grid",
    "gridworld",
    "line_world",
    "locomotion",
    "navigation",
    "point_goal",
]
