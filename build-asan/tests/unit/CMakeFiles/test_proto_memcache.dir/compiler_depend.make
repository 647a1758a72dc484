# Empty compiler generated dependencies file for test_proto_memcache.
# This may be replaced when dependencies are built.
