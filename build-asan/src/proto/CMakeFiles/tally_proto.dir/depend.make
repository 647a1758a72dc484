# Empty dependencies file for tally_proto.
# This may be replaced when dependencies are built.
