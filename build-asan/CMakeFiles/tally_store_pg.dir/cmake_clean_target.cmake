file(REMOVE_RECURSE
  "libtally_store_pg.a"
)
