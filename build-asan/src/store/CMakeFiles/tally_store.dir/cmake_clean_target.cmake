file(REMOVE_RECURSE
  "libtally_store.a"
)
