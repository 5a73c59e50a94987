__version__ = "0.1.0"

# Bumped whenever a message's shape changes; master and worker must agree.
PROTOCOL_VERSION = 2  # 2: stats deltas carry corrected histograms, dropped arrivals, lags
