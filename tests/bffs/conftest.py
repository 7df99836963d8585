from tests.support.demo import _reset_flows, alice, client, demo_queue, demo_worker, mallory, ops

__all__ = ["_reset_flows", "alice", "client", "demo_queue", "demo_worker", "mallory", "ops"]
