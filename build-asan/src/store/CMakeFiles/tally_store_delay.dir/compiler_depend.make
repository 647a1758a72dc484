# Empty compiler generated dependencies file for tally_store_delay.
# This may be replaced when dependencies are built.
