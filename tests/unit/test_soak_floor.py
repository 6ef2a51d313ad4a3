"""The soak's queueing floor: each window's arrivals through an ideal server of the measured capacity."""

import pytest

from benchmarks.serve_load import arrivals, queueing_floor_p99_ms


def test_arrivals_are_the_same_for_a_seed_and_fill_the_window():
    a, b, c = arrivals(10, 30, seed=16), arrivals(10, 30, seed=16), arrivals(10, 30, seed=17)
    assert a == b and a != c  # a window's bursts are the same in every run
    assert a[0] == 0 and all(x < y for x, y in zip(a, a[1:], strict=False)) and a[-1] < 30
    assert 240 < len(a) < 360  # ~rate x duration
    assert arrivals(4, 1, poisson=False) == [0, 0.25, 0.5, 0.75]


def test_floor_is_the_service_time_without_queueing_and_the_queue_behind_a_burst():
    assert queueing_floor_p99_ms([0, 1, 2, 3], capacity=10) == pytest.approx(100)  # spaced: each alone, 100 ms
    # 100 at once at 10/s: the i-th leaves at (i+1)/10 s; p99 of 0.1..10 s (numpy's linear percentile)
    assert queueing_floor_p99_ms([0.0] * 100, capacity=10) == pytest.approx(9901, abs=1)
    assert queueing_floor_p99_ms([], capacity=10) is None and queueing_floor_p99_ms([0], capacity=0) is None


def test_at_eighty_percent_some_windows_miss_a_one_second_p99_on_an_ideal_server():
    """Why the soak reports the floor: at 80 % of a 16.6 images/s capacity, Poisson bursts alone put a 30-s
    window's p99 over 1 s on an ideal server now and then (window 17 of the soak, seed 16)."""
    floors = [queueing_floor_p99_ms(arrivals(13.3, 30, seed), 16.62) for seed in range(20)]
    assert max(floors) > 1000 and sorted(floors)[len(floors) // 2] < 600


def test_the_replicas_floor_is_that_many_servers_behind_one_queue_each_at_their_share_of_the_capacity():
    # spaced arrivals: each alone on a server of half the capacity, 200 ms; two at once: both served side by side
    assert queueing_floor_p99_ms([0, 1, 2, 3], capacity=10, servers=2) == pytest.approx(200)
    assert queueing_floor_p99_ms([0.0, 0.0], capacity=10, servers=2) == pytest.approx(200)
    # a burst: 100 at once through 2 servers of 5/s each leave in pairs every 0.2 s, the last pair at 10 s
    assert queueing_floor_p99_ms([0.0] * 100, capacity=10, servers=2) == pytest.approx(10000, abs=2)
    # on the soak's arrivals two replicas never beat one server of their summed capacity, and never by much more
    for seed in range(5):
        due = arrivals(13.3, 30, seed)
        one, two = queueing_floor_p99_ms(due, 16.62), queueing_floor_p99_ms(due, 16.62, servers=2)
        assert one < two < one + 2 * 1000 / 16.62
    assert queueing_floor_p99_ms([0.0], capacity=10, servers=0) is None
