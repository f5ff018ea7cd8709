"""The watcher service: library roots -> quiescent FileEvents on the NATS events stream."""
