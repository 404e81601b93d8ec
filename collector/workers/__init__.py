"""The workers that move a call along: the engine (one event at a time per call), the
command outbox, the sink delivery worker and the deadline timers. They are typed against
collector.ports and never import an adapter."""
