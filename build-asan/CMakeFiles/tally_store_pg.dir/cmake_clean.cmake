file(REMOVE_RECURSE
  "CMakeFiles/tally_store_pg.dir/src/store/pg.c.o"
  "CMakeFiles/tally_store_pg.dir/src/store/pg.c.o.d"
  "CMakeFiles/tally_store_pg.dir/src/store/pg_batch.c.o"
  "CMakeFiles/tally_store_pg.dir/src/store/pg_batch.c.o.d"
  "CMakeFiles/tally_store_pg.dir/src/store/pg_sql.c.o"
  "CMakeFiles/tally_store_pg.dir/src/store/pg_sql.c.o.d"
  "libtally_store_pg.a"
  "libtally_store_pg.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/tally_store_pg.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
