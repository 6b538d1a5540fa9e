"""The worker's readiness rule (`CaughtUp`), pure: the work-log ends a consumer reports, the positions of the district
log. The worker's endpoints themselves are proved against the session's real worker in test_health.py."""

from __future__ import annotations

from aiokafka import TopicPartition

from streams.pipeline.district_log import DistrictLog
from streams.pipeline.recovery import PartitionCores
from streams.reference import load_catalogue
from streams.settings import Settings
from streams.pipeline.snapshots import SnapshotStore
from streams.pipeline.worker import CaughtUp

TOPIC = "patrol-test-district-worklog"


class Ends:
    """What the pipeline's consumer knows of the work log's ends: the high-water mark of its last fetch."""

    def __init__(self, ends: dict[int, int | None]):
        self.ends = ends

    def highwater(self, tp: TopicPartition) -> int | None:
        assert tp.topic == TOPIC
        return self.ends[tp.partition]


def a_worker() -> tuple[DistrictLog, CaughtUp]:
    settings = Settings()
    districts = DistrictLog(settings, TOPIC, load_catalogue(settings), SnapshotStore(settings, f"{TOPIC}-snapshots"),
                            group_id="patrol-test-pipeline")
    return districts, CaughtUp(districts, TOPIC)


def test_not_ready_before_the_pipeline_has_its_partitions():
    _, caught_up = a_worker()
    assert caught_up(Ends({})) == (False, "the district pipeline has no partitions assigned yet")
    caught_up.ends = {0: None}
    assert caught_up(None)[0] is False  # the loop is restarting: no consumer


def test_ready_once_every_owned_partition_is_processed_to_where_its_log_ended_when_assigned():
    districts, caught_up = a_worker()
    caught_up.ends = {0: None, 1: None, 2: None}
    consumer = Ends({0: None, 1: 120, 2: 0})
    # partition 0: not fetched yet, its end unknown; 1: not recovered yet; 2: an empty log, nothing to catch up
    assert caught_up(consumer) == (False, "catching up with work-log partitions [0, 1]")
    consumer.ends[0] = 40
    districts.partitions[0] = PartitionCores(next_offset=40)
    districts.partitions[1] = PartitionCores(next_offset=119)
    assert caught_up(consumer) == (False, "catching up with work-log partitions [1]")
    # the log grows on: the end recorded when the partition came is the mark, not the moving end
    consumer.ends[1] = 500
    districts.partitions[1].next_offset = 120
    assert caught_up(consumer) == (True, "caught up with work-log partitions [0, 1, 2]")


def test_a_rebalance_starts_the_wait_again():
    districts, caught_up = a_worker()
    caught_up.ends = {3: 10}
    districts.partitions[3] = PartitionCores(next_offset=10)
    assert caught_up(Ends({3: 10}))[0] is True
    caught_up.ends = None  # revoked
    assert caught_up(Ends({3: 10}))[0] is False
