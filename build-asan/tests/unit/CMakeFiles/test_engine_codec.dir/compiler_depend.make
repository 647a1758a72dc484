# Empty compiler generated dependencies file for test_engine_codec.
# This may be replaced when dependencies are built.
