# Empty dependencies file for test_engine_table.
# This may be replaced when dependencies are built.
