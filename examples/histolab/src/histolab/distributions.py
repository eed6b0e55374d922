"""Service-time distributions named in the workbook.

Lab managers describe a task as "usually 5 minutes, never under 3, at worst
12" (triangular) or by a mean and spread from timing studies (lognormal: task
times are positive and right-skewed). Parameters are in minutes, as people
write them; samples are returned in minutes too.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

KINDS = ("triangular", "lognormal", "exponential", "uniform", "fixed")
"""Distribution names a workbook may use."""

PARAMETERS = {
    "triangular": ("min", "mode", "max"),
    "lognormal": ("mean", "sd"),
    "exponential": ("mean",),
    "uniform": ("min", "max"),
    "fixed": ("value",),
}
"""What p1, p2, p3 mean for each kind, for error messages and docs."""


class DistributionError(ValueError):
    """Parameters that do not describe a valid distribution."""


@dataclass(frozen=True)
class Distribution:
    """One distribution of positive durations in minutes.

    ``lognormal`` takes the mean and standard deviation of the duration
    itself (not of its logarithm), which is what a timing study reports.
    """

    kind: str
    params: tuple[float, ...]

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DistributionError(f"unknown distribution {self.kind!r}; use one of {KINDS}")
        names = PARAMETERS[self.kind]
        if len(self.params) != len(names):
            raise DistributionError(
                f"{self.kind} needs {len(names)} parameter(s) ({', '.join(names)}), "
                f"got {len(self.params)}"
            )
        if any(p < 0 or not math.isfinite(p) for p in self.params):
            raise DistributionError(f"{self.kind} parameters must be finite and >= 0")
        if self.kind == "triangular":
            low, mode, high = self.params
            if not low <= mode <= high:
                raise DistributionError(f"triangular needs min <= mode <= max, got {self.params}")
        elif self.kind == "uniform" and self.params[0] > self.params[1]:
            raise DistributionError(f"uniform needs min <= max, got {self.params}")
        elif self.kind in ("lognormal", "exponential") and self.params[0] <= 0:
            raise DistributionError(f"{self.kind} needs mean > 0")

    @property
    def mean(self) -> float:
        """Expected value in minutes, for capacity checks and docs."""
        if self.kind == "triangular":
            return sum(self.params) / 3
        if self.kind == "uniform":
            return (self.params[0] + self.params[1]) / 2
        return self.params[0]

    def sample(self, rng: random.Random) -> float:
        """One duration in minutes."""
        if self.kind == "triangular":
            low, mode, high = self.params
            return rng.triangular(low, high, mode)
        if self.kind == "lognormal":
            mean, sd = self.params
            sigma2 = math.log1p((sd / mean) ** 2)
            return rng.lognormvariate(math.log(mean) - sigma2 / 2, math.sqrt(sigma2))
        if self.kind == "exponential":
            return rng.expovariate(1.0 / self.params[0])
        if self.kind == "uniform":
            return rng.uniform(self.params[0], self.params[1])
        return self.params[0]
