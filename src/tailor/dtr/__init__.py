"""Dynamic treatment regimes: Q-learning, regime values, embedded regimes, missing data."""

from tailor.dtr.qlearning import QLearning, QLearningResult

__all__ = ["QLearning", "QLearningResult"]
