"""Leader election: the pure decision over a Lease, and the elector's reactions (a fake API server)."""

from __future__ import annotations

import asyncio
import copy
from datetime import datetime, timedelta, timezone
from typing import Any, NoReturn

import pytest

from kubetask.kube import ApiError, Kube
from kubetask.operator.config import OperatorSettings
from kubetask.operator.leader import Elector, format_time, lease_decision, lease_namespace, parse_time, release_spec

NOW = datetime(2026, 12, 2, 6, 0, 0, tzinfo=timezone.utc)
ME, OTHER = "op-a_10_abc123", "op-b_20_def456"


def lease(holder: str | None, renewed: datetime | None = NOW - timedelta(seconds=5), duration: int | None = 15,
          transitions: int = 3, acquired: datetime | None = NOW - timedelta(minutes=1)) -> dict[str, Any]:
    spec: dict[str, Any] = {"leaseTransitions": transitions}
    if holder is not None:
        spec["holderIdentity"] = holder
    if duration is not None:
        spec["leaseDurationSeconds"] = duration
    if renewed is not None:
        spec["renewTime"] = format_time(renewed)
    if acquired is not None:
        spec["acquireTime"] = format_time(acquired)
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "kubetask-operator", "namespace": "kt", "resourceVersion": "41"}, "spec": spec}


# -- lease_decision ------------------------------------------------------------------------------

def test_absent_lease_is_created_with_no_transitions() -> None:
    decision = lease_decision(None, ME, NOW, lease_seconds=15)
    assert decision.action == "create"
    assert decision.spec == {"holderIdentity": ME, "leaseDurationSeconds": 15, "acquireTime": "2026-12-02T06:00:00.000000Z",
                             "renewTime": "2026-12-02T06:00:00.000000Z", "leaseTransitions": 0}


def test_held_by_me_is_renewed_keeping_acquire_time_and_transitions() -> None:
    mine = lease(ME)
    decision = lease_decision(mine, ME, NOW, lease_seconds=15)
    assert decision.action == "renew"
    assert decision.spec is not None
    assert decision.spec["renewTime"] == format_time(NOW)
    assert decision.spec["acquireTime"] == mine["spec"]["acquireTime"]
    assert decision.spec["leaseTransitions"] == 3 and decision.spec["holderIdentity"] == ME


def test_renewing_even_past_expiry_is_the_holders_call() -> None:
    """Whether a leader may still act is its renew deadline's business, not the decision's."""
    assert lease_decision(lease(ME, renewed=NOW - timedelta(minutes=5)), ME, NOW).action == "renew"


def test_held_by_another_and_fresh_means_wait_until_it_expires() -> None:
    decision = lease_decision(lease(OTHER, renewed=NOW - timedelta(seconds=14)), ME, NOW, lease_seconds=15)
    assert decision.action == "wait" and decision.spec is None
    assert decision.holder == OTHER
    assert decision.expires == NOW + timedelta(seconds=1)


def test_expired_lease_is_taken_over_with_one_more_transition() -> None:
    decision = lease_decision(lease(OTHER, renewed=NOW - timedelta(seconds=15, microseconds=1)), ME, NOW, lease_seconds=4)
    assert decision.action == "take"
    assert decision.spec == {"holderIdentity": ME, "leaseDurationSeconds": 4, "acquireTime": format_time(NOW),
                             "renewTime": format_time(NOW), "leaseTransitions": 4}


def test_expiry_exactly_at_the_boundary_is_taken() -> None:
    assert lease_decision(lease(OTHER, renewed=NOW - timedelta(seconds=15)), ME, NOW).action == "take"


def test_empty_or_missing_holder_is_taken() -> None:
    for holder in ("", None):
        decision = lease_decision(lease(holder, renewed=NOW), ME, NOW)
        assert decision.action == "take", holder
        assert decision.spec is not None and decision.spec["leaseTransitions"] == 4


def test_the_holders_own_duration_decides_expiry() -> None:
    """A holder that wrote 60 s is waited for 60 s, whatever our own setting."""
    held = lease(OTHER, renewed=NOW - timedelta(seconds=30), duration=60)
    assert lease_decision(held, ME, NOW, lease_seconds=15).action == "wait"
    released = lease(OTHER, renewed=NOW - timedelta(seconds=2), duration=1)  # what a release leaves, read stale
    assert lease_decision(released, ME, NOW, lease_seconds=15).action == "take"


def test_missing_duration_falls_back_to_ours_and_missing_times_mean_expired() -> None:
    assert lease_decision(lease(OTHER, renewed=NOW - timedelta(seconds=10), duration=None), ME, NOW, lease_seconds=15).action == "wait"
    assert lease_decision(lease(OTHER, renewed=NOW - timedelta(seconds=10), duration=None), ME, NOW, lease_seconds=5).action == "take"
    assert lease_decision(lease(OTHER, renewed=None, acquired=NOW - timedelta(seconds=1)), ME, NOW).action == "wait"
    assert lease_decision(lease(OTHER, renewed=None, acquired=None), ME, NOW).action == "take"


def test_missing_spec_and_no_transitions_field() -> None:
    decision = lease_decision({"metadata": {"name": "x", "resourceVersion": "1"}}, ME, NOW)
    assert decision.action == "take" and decision.spec is not None and decision.spec["leaseTransitions"] == 1


def test_decision_does_not_touch_its_input_and_keeps_other_fields() -> None:
    held = lease(OTHER, renewed=NOW - timedelta(minutes=1))
    held["spec"]["strategy"] = "OldestEmulationVersion"
    before = copy.deepcopy(held)
    decision = lease_decision(held, ME, NOW)
    assert held == before
    assert decision.spec is not None and decision.spec["strategy"] == "OldestEmulationVersion"


def test_times_are_microtime_strings_and_parse_back() -> None:
    assert format_time(NOW) == "2026-12-02T06:00:00.000000Z"
    assert format_time(datetime(2026, 12, 2, 7, 0, tzinfo=timezone(timedelta(hours=1)))) == "2026-12-02T06:00:00.000000Z"
    for text in ("2026-12-02T06:00:00.000000Z", "2026-12-02T06:00:00Z", "2026-12-02T06:00:00.000000+00:00", "2026-12-02T06:00:00"):
        assert parse_time(text) == NOW, text
    assert parse_time(None) is None and parse_time("") is None and parse_time("yesterday") is None


def test_release_leaves_nobody_holding_for_one_second() -> None:
    spec = release_spec(lease(ME)["spec"], NOW)
    assert spec["holderIdentity"] == "" and spec["leaseDurationSeconds"] == 1 and spec["renewTime"] == format_time(NOW)
    assert spec["leaseTransitions"] == 3
    assert lease_decision({"spec": spec}, OTHER, NOW).action == "take"


def test_lease_namespace_setting_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    import kubetask.operator.leader as leader

    assert lease_namespace(OperatorSettings(leader_lease_namespace="kubetask")) == "kubetask"
    monkeypatch.setattr(leader, "SERVICE_ACCOUNT_DIR", tmp_path)
    assert lease_namespace(OperatorSettings()) == "default"
    (tmp_path / "namespace").write_text("ops\n")
    assert lease_namespace(OperatorSettings()) == "ops"


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBETASK_LEADER_ELECTION", "false")
    monkeypatch.setenv("KUBETASK_LEADER_LEASE_NAME", "mine")
    monkeypatch.setenv("KUBETASK_LEADER_LEASE_SECONDS", "4")
    monkeypatch.setenv("KUBETASK_LEADER_RENEW_DEADLINE_SECONDS", "3")
    monkeypatch.setenv("KUBETASK_LEADER_RETRY_SECONDS", "0.5")
    settings = OperatorSettings()
    assert (settings.leader_election, settings.leader_lease_name, settings.leader_lease_seconds,
            settings.leader_renew_deadline_seconds, settings.leader_retry_seconds) == (False, "mine", 4, 3.0, 0.5)
    assert OperatorSettings.model_fields["leader_election"].default is True


# -- the elector against a fake API server -------------------------------------------------------

class FakeLeases:
    """One Lease with resourceVersion preconditions, as the API server keeps it."""

    def __init__(self, existing: dict[str, Any] | None = None) -> None:
        self.lease = copy.deepcopy(existing)
        self.version = 41
        self.writes: list[tuple[str, dict[str, Any]]] = []
        self.fail: ApiError | OSError | None = None

    async def get(self, path: str, **_: Any) -> dict[str, Any]:
        await asyncio.sleep(0)  # let concurrent candidates interleave, as real requests do
        if self.lease is None:
            raise ApiError(404, "NotFound", "leases not found")
        return copy.deepcopy(self.lease)

    async def create(self, path: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        if self.lease is not None:
            raise ApiError(409, "AlreadyExists", "leases already exists")
        return self._store("create", body)

    async def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> dict[str, Any]:
        assert method == "PUT"
        fence = Kube.write_fence
        if fence is not None:
            fence()
        if self.fail is not None:
            raise self.fail
        if self.lease is None:
            raise ApiError(404, "NotFound", "leases not found")
        if body["metadata"]["resourceVersion"] != self.lease["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", "the object has been modified")
        return self._store("put", body)

    def _store(self, verb: str, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        stored = copy.deepcopy(body)
        stored.setdefault("metadata", {})["resourceVersion"] = str(self.version)
        self.lease = stored
        self.writes.append((verb, copy.deepcopy(stored["spec"])))
        return copy.deepcopy(stored)

    def steal(self, holder: str) -> None:
        assert self.lease is not None
        self.lease["spec"]["holderIdentity"] = holder
        self.version += 1
        self.lease["metadata"]["resourceVersion"] = str(self.version)


class Exited(Exception):
    pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def elector(fake: FakeLeases, clock: Clock | None = None, wall: datetime = NOW, identity: str = ME) -> Elector:
    def exit_(code: int) -> NoReturn:
        raise Exited(code)

    return Elector(fake, "kt", "kubetask-operator", identity, lease_seconds=15, renew_deadline=10, retry=2,  # type: ignore[arg-type]
                   clock=clock or Clock(), wall=lambda: wall, exit=exit_)


@pytest.fixture(autouse=True)
def no_fence() -> Any:
    yield
    Kube.write_fence = None


def test_timings_must_nest() -> None:
    for lease_s, renew, retry in ((10, 10, 2), (15, 10, 10), (15, 10, 0)):
        with pytest.raises(ValueError, match="retry"):
            Elector(FakeLeases(), "kt", "x", ME, lease_seconds=lease_s, renew_deadline=renew, retry=retry)  # type: ignore[arg-type]


async def test_creates_an_absent_lease_and_leads() -> None:
    fake = FakeLeases()
    e = elector(fake)
    assert await e.acquire(asyncio.Event()) is True
    assert fake.writes == [("create", {"holderIdentity": ME, "leaseDurationSeconds": 15, "acquireTime": format_time(NOW),
                                       "renewTime": format_time(NOW), "leaseTransitions": 0})]
    assert e.fresh()


async def test_waits_while_another_holds_it_then_takes_it_over() -> None:
    fake = FakeLeases(lease(OTHER, renewed=NOW - timedelta(seconds=5)))
    e = elector(fake)
    decision = await e.try_acquire()
    assert decision.action == "wait" and e.holder == OTHER and not fake.writes
    later = elector(fake, wall=NOW + timedelta(seconds=11))
    assert (await later.try_acquire()).action == "take"
    assert fake.writes[-1][1]["holderIdentity"] == ME and fake.writes[-1][1]["leaseTransitions"] == 4


async def test_a_lost_race_is_a_409_and_means_wait() -> None:
    fake = FakeLeases(lease(OTHER, renewed=NOW - timedelta(minutes=1)))
    e = elector(fake)
    original = fake.get

    async def get_then_someone_else_wins(path: str, **kw: Any) -> dict[str, Any]:
        seen = await original(path)
        fake.steal("op-c_30_aaaaaa")  # another standby takes it between our read and our write
        return seen

    fake.get = get_then_someone_else_wins  # type: ignore[method-assign]
    assert (await e.try_acquire()).action == "wait"
    assert not fake.writes and fake.lease is not None and fake.lease["spec"]["holderIdentity"] == "op-c_30_aaaaaa"

    both = FakeLeases()
    first, second = elector(both, identity=ME), elector(both, identity=OTHER)
    results = await asyncio.gather(first.try_acquire(), second.try_acquire())
    assert sorted(d.action for d in results) == ["create", "wait"]
    assert len(both.writes) == 1


async def test_stop_ends_the_standby_wait() -> None:
    fake = FakeLeases(lease(OTHER, renewed=NOW))
    stop = asyncio.Event()
    e = elector(fake)
    task = asyncio.create_task(e.acquire(stop))
    await asyncio.sleep(0.05)
    stop.set()
    assert await asyncio.wait_for(task, 3) is False


async def test_renewal_moves_renew_time_with_one_put() -> None:
    fake = FakeLeases()
    clock = Clock()
    e = elector(fake, clock)
    await e.try_acquire()
    clock.now += 2
    await e.renew()
    assert [verb for verb, _ in fake.writes] == ["create", "put"]
    assert e.renewed_at == clock.now and e.fresh()


async def test_renewal_conflict_with_another_holder_exits() -> None:
    fake = FakeLeases()
    e = elector(fake)
    await e.try_acquire()
    fake.steal(OTHER)
    with pytest.raises(Exited):
        await e.renew()


async def test_renewal_conflict_still_ours_renews_from_the_fresh_version() -> None:
    fake = FakeLeases()
    e = elector(fake)
    await e.try_acquire()
    fake.steal(ME)  # someone touched the object (a label, say) but we still hold it
    await e.renew()
    assert e.lease is not None and e.lease["metadata"]["resourceVersion"] == fake.lease["metadata"]["resourceVersion"]  # type: ignore[index]
    await e.renew()
    assert fake.writes[-1][0] == "put"


async def test_past_the_renew_deadline_every_write_exits() -> None:
    fake = FakeLeases()
    clock = Clock()
    e = elector(fake, clock)
    await e.try_acquire()
    e.leading = True
    Kube.write_fence = e.check
    fake.fail = OSError("connection refused")
    clock.now += 9
    await e.renew()  # fails, but still within the deadline: no exit
    e.check()
    clock.now += 1.5
    with pytest.raises(Exited):
        e.check()  # what the watchdog thread and the renewal loop call
    with pytest.raises(Exited):
        await fake.request("PUT", e.path, body={})  # what every write of the process meets: the fence


async def test_release_empties_the_holder_and_a_standby_takes_over_at_once() -> None:
    fake = FakeLeases()
    e = elector(fake)
    await e.try_acquire()
    e.leading = True
    await e.release()
    assert fake.writes[-1][1]["holderIdentity"] == "" and fake.writes[-1][1]["leaseDurationSeconds"] == 1
    assert not e.leading and Kube.write_fence is None
    assert (await elector(fake, identity=OTHER).try_acquire()).action == "take"


async def test_no_release_when_the_last_renewal_is_too_old() -> None:
    fake = FakeLeases()
    clock = Clock()
    e = elector(fake, clock)
    await e.try_acquire()
    e.leading = True
    clock.now += 11
    await e.release()
    assert [verb for verb, _ in fake.writes] == ["create"]


async def test_the_real_client_fences_writes_but_not_reads() -> None:
    from kubetask.kube import Connection

    sent: list[str] = []

    async def send(method: str, path: str, body: Any, params: Any, content_type: str) -> tuple[int, str, str]:
        sent.append(method)  # in place of the library's call: the fence sits before it
        return 200, "OK", "{}"

    kube = Kube(Connection(server="http://api.invalid"))
    kube._send = send  # type: ignore[method-assign]

    def fence() -> None:
        raise Exited(1)

    Kube.write_fence = fence
    await kube.get("/api/v1/namespaces")
    for write in (kube.create("/x", {}), kube.patch("/x", {}), kube.delete("/x"), kube.request("PUT", "/x", body={})):
        with pytest.raises(Exited):
            await write
    assert sent == ["GET"]
    Kube.write_fence = None
    await kube.patch("/x", {})
    assert sent == ["GET", "PATCH"]
    await kube.close()
