"""Evaluation harnesses: score embeddings on real, labelled tasks against untrained baselines."""

# Every "sd" the harnesses print and write into cards is numpy's default, the population sd (dividing by n,
# not n - 1), over 2-6 seeds, runs or folds; the tables say so, since the sample sd is sqrt(n / (n - 1))
# times it (1.22x for 3 seeds). compare-metrics checks a retrained figure against it, the stricter test.
SD_CONVENTION = ("sd: population sd, dividing by n (the sample sd is sqrt(n/(n-1)) times it: "
                 "1.22x for 3 seeds, 1.12x for 5 folds)")
