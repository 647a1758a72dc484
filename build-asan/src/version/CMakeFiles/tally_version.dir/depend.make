# Empty dependencies file for tally_version.
# This may be replaced when dependencies are built.
