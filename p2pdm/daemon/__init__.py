"""Running a node from a home directory: the composition root (runner),
the home and its files (home), and the one-node-per-home lock (lockfile).
"""
