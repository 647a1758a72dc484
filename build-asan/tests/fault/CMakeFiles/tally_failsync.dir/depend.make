# Empty dependencies file for tally_failsync.
# This may be replaced when dependencies are built.
