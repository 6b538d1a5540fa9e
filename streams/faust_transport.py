"""faust's aiokafka transport with the worker consumer's fetch wait taken from our settings.

faust-streaming hard-codes ``fetch_max_wait_ms=1500`` for the worker consumer.
Tansu answers a waiting fetch only when that wait expires, so on it every hop
would cost up to 1.5 s; with a few milliseconds a hop costs about ten.
"""

from __future__ import annotations

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        # read by aiokafka when the consumer starts and builds its fetcher
        consumer._fetch_max_wait_ms = self.app.conf.patrol_fetch_max_wait_ms
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self):
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class PatrolApp(faust.App):
    """A faust app whose broker transport honours `fetch_max_wait_ms`."""

    def __init__(self, *args, fetch_max_wait_ms: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.conf.patrol_fetch_max_wait_ms = fetch_max_wait_ms

    def _new_transport(self):
        return _Transport(self.conf.broker_consumer, self)
