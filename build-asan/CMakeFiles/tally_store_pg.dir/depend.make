# Empty dependencies file for tally_store_pg.
# This may be replaced when dependencies are built.
