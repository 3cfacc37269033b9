"""The store's two-stage tables on the device (kernels.resident), under the Triton interpreter:
the same answers as the host path, only changed rows re-sent, and a device-memory budget that
evicts least recently used tables and leaves a too-big table on the host."""

from __future__ import annotations

import numpy as np
import pytest

from memsvc.kernels import resident
from memsvc.store.two_stage import CodeTable

rng = np.random.default_rng(11)


def _unit(n: int, dim: int = 96) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def triton_backend(monkeypatch: pytest.MonkeyPatch) -> resident.DeviceBudget:
    monkeypatch.setenv("MEMSVC_KERNEL_BACKEND", "triton")
    budget = resident.DeviceBudget(1 << 30)
    monkeypatch.setattr(resident, "_DEFAULT", budget)
    return budget


def _same(a: list, b: list) -> None:
    for (pa, sa), (pb, sb) in zip(a, b, strict=True):
        assert np.array_equal(pa, pb)
        assert np.allclose(sa, sb, atol=1e-5)


@pytest.mark.parametrize("mode", ["binary+rescore", "int8"])
def test_device_tables_answer_as_the_host_does_and_send_only_changes(
    mode: str, triton_backend: resident.DeviceBudget, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, pks = _unit(256), np.arange(1000, 1256)
    dev = CodeTable(96, mode, oversample=4)
    assert dev._device is not None
    monkeypatch.setenv("MEMSVC_KERNEL_BACKEND", "cpu")
    host = CodeTable(96, mode, oversample=4)
    assert host._device is None
    for t in (dev, host):
        t.rebuild(pks, x)
    q = x[:5] + 0.1 * _unit(5)
    _same(dev.search_batch(q, 10), host.search_batch(q, 10))
    first = dev._device.uploads
    assert first == len(dev.pks)  # the whole capacity, once
    _same(dev.search_batch(q, 10), host.search_batch(q, 10))
    assert dev._device.uploads == first  # nothing changed, nothing sent

    new = _unit(3)
    for t in (dev, host):
        t.remove(np.array([1000, 1001, 1002]))  # the last rows move into rows 0-2
        t.upsert(np.array([5000, 5001, 5002]), new)  # appended at rows 253-255: no resize
    got = dev.search_batch(new, 1)
    _same(got, host.search_batch(new, 1))
    assert [int(p[0]) for p, _ in got] == [5000, 5001, 5002]
    assert dev._device.uploads == first + 6  # three moved rows and three appended ones
    one = dev.search(new[0], 3)
    assert int(one[0][0]) == 5000
    dev.close()
    assert not dev._device.resident and triton_backend.used == 0


def test_the_budget_evicts_the_least_recently_searched_table(
    triton_backend: resident.DeviceBudget,
) -> None:
    tables = [CodeTable(96, "binary+rescore", oversample=2) for _ in range(3)]
    for i, t in enumerate(tables):
        t.rebuild(np.arange(i * 1000, i * 1000 + 200), _unit(200))
    q = _unit(1)
    tables[0].search_batch(q, 5)
    one = tables[0]._device.nbytes
    triton_backend.limit = 2 * one  # room for two tables
    tables[1].search_batch(q, 5)
    tables[0].search_batch(q, 5)  # 0 is now the most recently used
    tables[2].search_batch(q, 5)  # evicts 1
    assert [t._device.resident for t in tables] == [True, False, True]
    assert triton_backend.evictions == 1 and triton_backend.used == 2 * one
    expect = tables[1].search_batch(q, 5)  # uploads again, evicting 0
    assert tables[1]._device.resident and not tables[0]._device.resident
    assert expect[0][0][0] >= 1000 and expect[0][0][0] < 1200


def test_a_table_bigger_than_the_budget_stays_on_the_host(
    triton_backend: resident.DeviceBudget, monkeypatch: pytest.MonkeyPatch
) -> None:
    triton_backend.limit = 10_000
    x = _unit(300)
    big = CodeTable(96, "binary+rescore", oversample=2)
    big.rebuild(np.arange(300), x)
    monkeypatch.setenv("MEMSVC_KERNEL_BACKEND", "cpu")
    host = CodeTable(96, "binary+rescore", oversample=2)
    host.rebuild(np.arange(300), x)
    q = x[10:12]
    _same(big.search_batch(q, 4), host.search_batch(q, 4))
    assert not big._device.resident and triton_backend.used == 0
