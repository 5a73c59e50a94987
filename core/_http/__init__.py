"""lcore's HTTP client, private: import it from ``lcore.http`` (whose docstring maps it)."""
