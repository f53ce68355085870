"""The paper's published numbers (%), quoted beside ours: FERV39k and MAFW test sets, not this benchmark."""
from __future__ import annotations

DATASETS = ("FERV39k", "MAFW")

# (WAR, UAR) per dataset.
TABLE2 = {
    "zero_shot": {"FERV39k": (17.09, 20.99), "MAFW": (19.16, 18.42)},
    "coop": {"FERV39k": (42.55, 31.72), "MAFW": (42.77, 30.79)},
    "cocoop": {"FERV39k": (44.25, 32.91), "MAFW": (43.23, 30.81)},
    "a3lign": {"FERV39k": (51.77, 41.87), "MAFW": (53.24, 42.07)},
}
TABLE3 = {
    "neither": {"FERV39k": (46.53, 33.24), "MAFW": (47.13, 33.64)},
    "mat": {"FERV39k": (48.61, 37.33), "MAFW": (48.52, 36.61)},
    "jas": {"FERV39k": (48.57, 35.29), "MAFW": (49.04, 38.72)},
    "both": {"FERV39k": (51.77, 41.87), "MAFW": (53.24, 42.07)},
}
# Table 4's all-at-once rows (4|4 and 4 (Joint)) and the BAP ladder's ends.
TABLE4 = {
    "all_at_once_separate": {"FERV39k": (21.25, 16.09), "MAFW": (18.14, 14.27)},
    "all_at_once_joint": {"FERV39k": (20.47, 15.86), "MAFW": (17.63, 13.21)},
    "stage1": {"FERV39k": (49.81, 38.03), "MAFW": (50.52, 40.10)},
    "stage3": {"FERV39k": (51.77, 41.87), "MAFW": (53.24, 42.07)},
}


def cells(numbers: dict[str, tuple[float, float]]) -> str:
    """'WAR / UAR' per dataset, as markdown cells."""
    return " | ".join(f"{numbers[d][0]:.2f} / {numbers[d][1]:.2f}" for d in DATASETS)
