"""What clients and workers share: workflow, task-queue, query, signal and update names, and
the pydantic models that cross the Temporal boundary. Evolve compatibly: add optional fields,
never rename or remove."""
