"""The INTERGROWTH-21st fetal head circumference standard, and gestational age from head circumference.

HC-for-gestational-age (Papageorghiou AT, Ohuma EO, Altman DG et al. International standards for fetal growth
based on serial ultrasound measurements: the Fetal Growth Longitudinal Study of the INTERGROWTH-21st Project.
Lancet 2014;384:869-79): HC is normally distributed at each gestational age (GA, exact weeks), with median and
SD given by fractional polynomials, valid from 14+0 to 40+0 weeks. The coefficients are those of the rOpenSci
`gigs` package (R/ig_fet.R, `ig_fet_equations`), which reproduces the INTERGROWTH-21st published tables;
tests/biometry/test_growth.py checks them against those tables (GROW_Fetal-ct_hc_Table.pdf, -zs_hc_).

GA from HC alone (Papageorghiou AT, Kemp B, Stones W et al. Ultrasound-based gestational-age estimation in late
pregnancy. Ultrasound Obstet Gynecol 2016;48:719-26): log(GA days) = 0.05970 log(HC)^2 + 6.409e-9 HC^3 + 3.3258,
HC in mm; `gigs` (R/ig_fet_estimation.R) documents it for scans at 98 to 181 days (14+0 to 25+6 weeks), so a
GA outside that window, that is an HC outside about 97.7 to 237.6 mm, is refused here. (The paper's own worked
example, HC 250 mm -> 189.8 days, lies past that window: the range the paper states could not be read here, so
the narrower documented window stands until someone checks it; docs/biometry.md.)

No maintained PyPI package covers the fetal standard (pygrowthstandards 0.1.3 and pedgrowth 1.0.0 with
pedgrowth-data-intergrowth cover newborn and postnatal INTERGROWTH standards only), hence these few lines.
Outside a range this module raises `OutsideStandard`: it never extrapolates.
"""

from __future__ import annotations

import math
from statistics import NormalDist

GA_MIN_DAYS = 98  # 14+0 weeks
GA_MAX_DAYS = 280  # 40+0 weeks
GA_FROM_HC_MIN_DAYS = 98  # 14+0 weeks
GA_FROM_HC_MAX_DAYS = 181  # 25+6 weeks
CHART_CENTILES = (3.0, 10.0, 50.0, 90.0, 97.0)

_NORMAL = NormalDist()


class OutsideStandard(ValueError):
    """A gestational age or measurement outside the range the standard was built on."""


def hc_median_mm(ga_days: float) -> float:
    """Median (= mean) HC in mm at a gestational age in days."""
    ga = _weeks(ga_days)
    return -28.2849 + 1.69267 * ga**2 - 0.397485 * ga**2 * math.log(ga)


def hc_sd_mm(ga_days: float) -> float:
    """SD of HC in mm at a gestational age in days."""
    ga = _weeks(ga_days)
    log_ga = math.log(ga)
    return 1.98735 + 0.0136772 * ga**3 - 0.00726264 * ga**3 * log_ga + 0.000976253 * ga**3 * log_ga**2


def hc_zscore(*, hc_mm: float, ga_days: float) -> float:
    """How many SDs the HC lies from the median for the gestational age."""
    if not (math.isfinite(hc_mm) and hc_mm > 0):
        raise OutsideStandard(f"head circumference must be a positive number of mm, not {hc_mm!r}")
    return (hc_mm - hc_median_mm(ga_days)) / hc_sd_mm(ga_days)


def hc_centile(*, hc_mm: float, ga_days: float) -> float:
    """The HC's centile (0 to 100) for the gestational age."""
    return 100.0 * _NORMAL.cdf(hc_zscore(hc_mm=hc_mm, ga_days=ga_days))


def hc_for_centile(*, centile: float, ga_days: float) -> float:
    """The HC in mm at a centile (strictly between 0 and 100) for the gestational age."""
    if not 0 < centile < 100:
        raise OutsideStandard(f"a centile lies strictly between 0 and 100, not {centile!r}")
    return hc_median_mm(ga_days) + _NORMAL.inv_cdf(centile / 100.0) * hc_sd_mm(ga_days)


def hc_centile_curves(
    centiles: tuple[float, ...] = CHART_CENTILES, *, step_days: int = 7
) -> dict[float, list[tuple[int, float]]]:
    """For a growth chart: per centile, (GA days, HC mm) from 14+0 to 40+0 weeks every `step_days`."""
    if step_days < 1:
        raise ValueError("step_days must be at least 1")
    days = list(range(GA_MIN_DAYS, GA_MAX_DAYS + 1, step_days))
    if days[-1] != GA_MAX_DAYS:
        days.append(GA_MAX_DAYS)
    return {c: [(d, hc_for_centile(centile=c, ga_days=d)) for d in days] for c in centiles}


def ga_from_hc_days(hc_mm: float) -> float:
    """Gestational age in days estimated from HC alone (INTERGROWTH-21st, 2016), inside its window only.

    Its prediction interval widens with gestation (the paper gives it): a first-trimester crown-rump length
    dates a pregnancy better, so a study's own GA wins over this estimate when it has one.
    """
    ga = _hc_dating_days(hc_mm)
    if not GA_FROM_HC_MIN_DAYS <= ga <= GA_FROM_HC_MAX_DAYS:
        raise OutsideStandard(
            f"HC {hc_mm:.1f} mm dates to {ga:.0f} days, outside the {GA_FROM_HC_MIN_DAYS} to "
            f"{GA_FROM_HC_MAX_DAYS} days (14+0 to 25+6 weeks) the HC-only dating equation covers"
        )
    return ga


def _hc_dating_days(hc_mm: float) -> float:
    """The 2016 equation itself, without its window (tests check it against the paper's worked example)."""
    if not (math.isfinite(hc_mm) and hc_mm > 0):
        raise OutsideStandard(f"head circumference must be a positive number of mm, not {hc_mm!r}")
    return math.exp(0.05970 * math.log(hc_mm) ** 2 + 0.000000006409 * hc_mm**3 + 3.3258)


def weeks_and_days(ga_days: float) -> str:
    """`20+3` for 143 days (completed weeks + days, as clinicians write a gestational age)."""
    whole = math.floor(ga_days)
    return f"{whole // 7}+{whole % 7}"


def _weeks(ga_days: float) -> float:
    if not (math.isfinite(ga_days) and GA_MIN_DAYS <= ga_days <= GA_MAX_DAYS):
        raise OutsideStandard(
            f"gestational age {ga_days!r} days is outside the INTERGROWTH-21st fetal standard's "
            f"{GA_MIN_DAYS} to {GA_MAX_DAYS} days (14+0 to 40+0 weeks)"
        )
    return ga_days / 7.0
