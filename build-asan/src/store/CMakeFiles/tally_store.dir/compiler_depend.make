# Empty compiler generated dependencies file for tally_store.
# This may be replaced when dependencies are built.
