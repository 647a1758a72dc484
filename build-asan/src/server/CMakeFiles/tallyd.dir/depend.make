# Empty dependencies file for tallyd.
# This may be replaced when dependencies are built.
