"""Live progress of operations: one watcher per operation per process, fanned out to every
subscriber, resumable by offset."""
