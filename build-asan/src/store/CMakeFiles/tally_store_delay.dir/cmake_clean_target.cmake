file(REMOVE_RECURSE
  "libtally_store_delay.a"
)
