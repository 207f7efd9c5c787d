"""Tools for testing gapeval setups offline (a loopback OpenAI-compatible server)."""
