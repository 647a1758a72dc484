file(REMOVE_RECURSE
  "libtally.a"
)
