"""The URL schemes of BROKER and STORE come from one registry.

Settings validation, the system checks and the two ``by_url`` lookups all
read `django_faust.conf.schemes`; these tests hold each of them to it, so a
driver added there is accepted everywhere and one missing there nowhere.
"""

from __future__ import annotations

import pytest
from mode.utils.imports import symbol_by_name

from django_faust import stores, transport
from django_faust.conf import BROKER_SCHEMES, STORE_SCHEMES, Settings, find_problems
from django_faust.conf.schemes import STORES, TRANSPORTS
from django_faust.exceptions import ImproperlyConfigured


def test_scheme_lists_are_the_registry_keys() -> None:
    assert BROKER_SCHEMES == tuple(TRANSPORTS) == ("memory", "kafka", "aiokafka")
    assert STORE_SCHEMES == tuple(STORES) == ("memory", "rocksdb")


@pytest.mark.parametrize("scheme", list(TRANSPORTS))
def test_every_registered_transport_is_accepted_and_found(scheme: str) -> None:
    url = f"{scheme}://localhost"
    assert Settings(broker=url).broker_scheme == scheme
    assert transport.by_url(url) is symbol_by_name(TRANSPORTS[scheme].path)


@pytest.mark.parametrize("scheme", list(STORES))
def test_every_registered_store_is_accepted_and_found(scheme: str) -> None:
    url = f"{scheme}://"
    assert Settings(store=url).store_url.scheme == scheme
    assert stores.by_url(url) is symbol_by_name(STORES[scheme].path)


def test_unknown_schemes_are_refused_with_the_registry_listed() -> None:
    (broker,) = find_problems({"BROKER": "redis://r"})
    assert broker.message.endswith(f"are: {', '.join(TRANSPORTS)}.")
    with pytest.raises(ImproperlyConfigured) as info:
        transport.by_url("redis://r")
    assert str(info.value).endswith(f"use one of: {', '.join(TRANSPORTS)}.")
    (store,) = find_problems({"STORE": "redis://"})
    assert store.message.endswith(f"are: {', '.join(STORES)}.")
    with pytest.raises(ImproperlyConfigured) as info:
        stores.by_url("redis://")
    assert str(info.value).endswith(
        f"use one of: {', '.join(f'{s}://' for s in STORES)}."
    )


def test_only_cluster_transports_get_the_replication_warning() -> None:
    assert {s for s, d in TRANSPORTS.items() if d.cluster} == {"kafka", "aiokafka"}


def test_drivers_that_need_a_package_name_its_extra() -> None:
    for driver in (*TRANSPORTS.values(), *STORES.values()):
        assert (driver.requires is None) == (driver.extra is None), driver
