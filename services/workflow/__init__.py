"""The workflow service: the cross-service worker (user onboarding, compliance export and
erasure) and the monitoring endpoints of operations."""
