"""ADX Core tooling: settings, logging, the `adx` command and the development launcher."""
