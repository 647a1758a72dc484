# Empty dependencies file for tally_cli.
# This may be replaced when dependencies are built.
