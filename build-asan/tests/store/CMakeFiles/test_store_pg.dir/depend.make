# Empty dependencies file for test_store_pg.
# This may be replaced when dependencies are built.
