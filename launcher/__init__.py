"""lcore.launcher: the command line and process supervision.

The launcher imports core; core never imports it. Importing this package imports nothing
heavy (no gevent, no asyncio, no locustfile): ``options`` parses the command line, config
files and ``LCORE_*`` environment variables, and the supervisor forks master and workers.
"""
