file(REMOVE_RECURSE
  "libtally_proto.a"
)
