"""Plumbing every service shares: database, migrations, HTTP app, problems, workflow helpers."""
