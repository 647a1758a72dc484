# Empty dependencies file for test_store_engine.
# This may be replaced when dependencies are built.
