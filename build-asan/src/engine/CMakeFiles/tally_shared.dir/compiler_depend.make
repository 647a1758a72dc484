# Empty compiler generated dependencies file for tally_shared.
# This may be replaced when dependencies are built.
