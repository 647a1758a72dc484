# Empty compiler generated dependencies file for counter.
# This may be replaced when dependencies are built.
