"""Dual-mode services: each runs as an HTTP server and as a Temporal worker from one codebase."""
