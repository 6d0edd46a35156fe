"""Model helpers: OCSP ordering by cost type, version features."""

from __future__ import annotations

import pytest

from crossroad.globalconf.model import (
    CostType,
    GlobalSettings,
    OcspInfo,
    OcspPreference,
    SharedParameters,
    order_ocsp,
)
from crossroad.identifiers import ClientId

FREE = OcspInfo("free", cost_type=CostType.FREE)
PAID = OcspInfo("paid", cost_type=CostType.PAID)
NONE = OcspInfo("none")
UNDEF = OcspInfo("undef", cost_type=CostType.UNDEFINED)
ALL = (NONE, PAID, FREE, UNDEF)


@pytest.mark.parametrize(
    ("preference", "expected"),
    [
        (OcspPreference.NONE, ["none", "paid", "free", "undef"]),
        (OcspPreference.ONLY_FREE, ["free"]),
        (OcspPreference.ONLY_PAID, ["paid"]),
        (OcspPreference.FREE_FIRST, ["free", "paid", "none", "undef"]),
        (OcspPreference.PAID_FIRST, ["paid", "free", "none", "undef"]),
    ],
)
def test_order_ocsp(preference: OcspPreference, expected: list[str]) -> None:
    assert [r.url for r in order_ocsp(ALL, preference)] == expected


def test_min_version_and_aliases() -> None:
    params = SharedParameters("EE", GlobalSettings(60))
    assert params.min_version() == 2
    assert params.instance == "EE"
    assert params.security_server_ids() == ()
    assert params.global_group("nope") is None
    assert params.global_group_ids() == ()
    assert not params.is_in_global_group(ClientId("EE", "GOV", "1"), "g")
