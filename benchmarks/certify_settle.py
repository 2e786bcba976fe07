"""How good is certification's "about N more repetitions would likely settle it"?

    python benchmarks/certify_settle.py [-d DRAWS] [--seed S]

For normal, lognormal and flat (uniform) data and n = 3, 5, 10 repetitions: draw the values, put
a `min` threshold halfway between their median and the lower end of its bootstrap 95 % CI (an
inconclusive verdict), ask `vbench.certify.evaluate_metric` for the repetitions that would settle
it, and divide n + that by the repetitions the median's asymptotic spread says are needed for the
CI to stop at the threshold: (z * c / distance)^2, c = sqrt(pi/2) sigma for normal data,
sqrt(3) sigma for uniform, 1 / (2 f(median)) for lognormal.  Prints the median ratio over the
draws and its quartiles: 1 is a right estimate, below 1 asks for too few.  The figures quoted in
`vbench.certify._median_reach` come from this script (150 draws, seed 2).
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
from collections.abc import Callable

from vbench.certify import CertifySpec, FigureStyle, Status, evaluate_metric
from vbench.stats import bootstrap_median_ci, t_quantile

PLAIN = FigureStyle(number=lambda v: f"{v:.4g}", ratio=lambda r: f"{r:.1%}", unit=str)
SIGMA = 0.5  # the lognormal's log-sd


def distributions(rng: random.Random) -> dict[str, tuple[Callable[[], float], float]]:
    """name -> (one draw, the true median's asymptotic standard error times sqrt(n))."""
    return {
        "normal": (lambda: 100 + 10 * rng.gauss(0, 1), 10 * math.sqrt(math.pi / 2)),
        "lognormal": (
            lambda: 100 * math.exp(rng.gauss(0, SIGMA)),
            # 1 / (2 f(m)) at the median m = 100: f(m) = 1 / (m SIGMA sqrt(2 pi))
            100 * SIGMA * math.sqrt(2 * math.pi) / 2,
        ),
        "uniform": (lambda: rng.uniform(100 - 10 * math.sqrt(3), 100 + 10 * math.sqrt(3)), 17.32),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-d", "--draws", type=int, default=150)
    parser.add_argument("--seed", type=int, default=2)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    z = t_quantile(0.975, math.inf)
    for name, (draw, se) in distributions(rng).items():
        for n in (3, 5, 10):
            ratios: list[float] = []
            for _ in range(args.draws):
                values = [draw() for _ in range(n)]
                ci = bootstrap_median_ci(values)
                median = statistics.median(values)
                if ci is None or ci[0] >= median:
                    continue
                threshold = median - (median - ci[0]) / 2
                spec = CertifySpec(mode="pv", metric="m", min=threshold)
                verdict = evaluate_metric(spec, values, "count", style=PLAIN)
                if verdict.status is not Status.INCONCLUSIVE or not verdict.more_repetitions:
                    continue
                needed = (z * se / (median - threshold)) ** 2
                ratios.append((n + verdict.more_repetitions) / needed)
            q1, mid, q3 = statistics.quantiles(ratios, n=4)
            print(f"{name:9} n = {n:2}: estimate / needed {mid:.2f} (quartiles {q1:.2f}, {q3:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
