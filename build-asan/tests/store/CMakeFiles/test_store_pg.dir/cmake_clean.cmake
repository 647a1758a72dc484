file(REMOVE_RECURSE
  "../test_store_pg"
  "../test_store_pg.pdb"
  "CMakeFiles/test_store_pg.dir/test_store_pg.c.o"
  "CMakeFiles/test_store_pg.dir/test_store_pg.c.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_store_pg.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
