file(REMOVE_RECURSE
  "libtally_cmd.a"
)
