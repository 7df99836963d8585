"""The development launcher behind ``make dev`` / ``adx dev``.

``spec`` describes a process, ``registry`` lists the processes of the stack, ``ports`` checks
their ports before anything starts, ``supervisor`` runs them, ``command`` is the CLI entry.
"""
