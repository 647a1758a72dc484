# Empty dependencies file for test_engine_mdel.
# This may be replaced when dependencies are built.
