file(REMOVE_RECURSE
  "../test_store_engine"
  "../test_store_engine.pdb"
  "CMakeFiles/test_store_engine.dir/test_store_engine.c.o"
  "CMakeFiles/test_store_engine.dir/test_store_engine.c.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_store_engine.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
