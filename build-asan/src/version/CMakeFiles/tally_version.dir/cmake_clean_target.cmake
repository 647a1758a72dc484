file(REMOVE_RECURSE
  "libtally_version.a"
)
