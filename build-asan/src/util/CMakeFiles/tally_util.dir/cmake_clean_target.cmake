file(REMOVE_RECURSE
  "libtally_util.a"
)
