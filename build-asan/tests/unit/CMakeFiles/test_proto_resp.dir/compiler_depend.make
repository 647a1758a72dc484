# Empty compiler generated dependencies file for test_proto_resp.
# This may be replaced when dependencies are built.
