# Empty compiler generated dependencies file for tally_cmd.
# This may be replaced when dependencies are built.
