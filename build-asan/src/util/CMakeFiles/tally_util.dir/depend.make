# Empty dependencies file for tally_util.
# This may be replaced when dependencies are built.
