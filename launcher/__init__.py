"""lcore.launcher: the command line and process supervision.

The launcher imports core; core never imports it. Importing this package imports nothing
heavy (no gevent, no asyncio, no locustfile): ``options`` parses the command line, config
files and ``LCORE_*`` environment variables, and the supervisor forks master and workers.

    main        the console script: validate, then fork and supervise
    options     parse_options (sources, precedence, cross-option rules); parser builds the
                argparse parser; sources reads config files and LCORE_* variables
    supervisor  forks master and workers, restarts dead workers, forwards Ctrl-C
    processes   what a forked process runs (load the locustfile, run a runtime)
    master_main the master's asyncio main: serve, start, report
    keys, demo, inspect   ``lcore keys``, ``--demo``, ``--run-single-user`` / ``--list``
"""
