"""Workflow BFF (4005): operations, their history, cancel/retry, and live progress."""
